"""Validators shared by the credential model, its form and its API."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def base_url_error(base_url: str) -> str | None:
    """What is wrong with a provider base URL, or None. Single-label hosts (a compose service
    such as `ollama`) are fine, which Django's URL validator would refuse."""
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"“{base_url}” is not a valid URL."
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"“{base_url}” is not a valid URL: use http:// or https:// and a host name."
    if parts.username or parts.password:
        return "Put credentials in the secret, not in the URL (the URL is shown to builders)."
    if parts.query or parts.fragment:
        return "The base URL takes no query or fragment; put settings in options."
    if any(char.isspace() for char in base_url):
        return f"“{base_url}” is not a valid URL: it contains spaces."
    return None


def validate_base_url(value: str) -> None:
    if value and (problem := base_url_error(value)):
        raise ValidationError(problem, code="invalid_base_url")
