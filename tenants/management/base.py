"""Base of Weft's operator commands: errors become a clear message and exit code 1, and
every write is audited as done by the command."""

from __future__ import annotations

import os
import pwd

from django.core.management.base import BaseCommand, CommandError

from ..audit import Actor, acting_as
from ..exceptions import WeftError


class OperatorCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            login = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            login = str(os.getuid())
        actor = Actor(user_id=None, label=f"{self._name()} (as {login})", source="command")
        with acting_as(actor):
            try:
                return super().execute(*args, **options)
            except WeftError as exc:
                raise CommandError(exc.message) from exc

    def _name(self) -> str:
        return "manage.py " + self.__module__.rsplit(".", 1)[-1]
