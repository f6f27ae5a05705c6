"""Model usage: every call as metered, read-only for everyone."""

from __future__ import annotations

from django.contrib import admin

from ..models import UsageEvent
from .base import ProviderAdmin


@admin.register(UsageEvent)
class UsageEventAdmin(ProviderAdmin):
    """Every model call, as metered; nobody edits or deletes them."""

    add_action = None
    change_action = None
    delete_action = None
    list_display = [
        "created_at",
        "operation",
        "model_name",
        "provider",
        "tokens",
        "cost_shown",
        "latency_ms",
        "time_to_first_token_ms",
        "status",
        "error_code",
    ]
    list_filter = ["operation", "status", "provider", "created_at"]
    search_fields = ["model_name", "error_code"]
    date_hierarchy = "created_at"

    @admin.display(description="tokens (in + out)")
    def tokens(self, event: UsageEvent) -> str:
        estimated = " (estimated)" if event.tokens_estimated else ""
        return (
            f"{event.total_tokens} ({event.prompt_tokens} + {event.completion_tokens}){estimated}"
        )

    @admin.display(description="cost", ordering="cost")
    def cost_shown(self, event: UsageEvent) -> str:
        return f"{event.cost.normalize():f} {event.currency}"

    def get_fields(self, request, obj=None):
        return [f.name for f in UsageEvent._meta.fields if f.name not in {"id", "tenant"}]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)
