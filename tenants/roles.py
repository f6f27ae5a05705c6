"""Membership roles, highest first: owner > admin > builder > operator > member."""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    BUILDER = "builder", "Builder"
    OPERATOR = "operator", "Operator"
    MEMBER = "member", "Member"


RANK: dict[str, int] = {
    Role.OWNER: 50,
    Role.ADMIN: 40,
    Role.BUILDER: 30,
    Role.OPERATOR: 20,
    Role.MEMBER: 10,
}


def at_least(role: str, minimum: str) -> bool:
    """True when `role` ranks at or above `minimum`."""
    return RANK.get(role, 0) >= RANK[minimum]
