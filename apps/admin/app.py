"""Apps: the list (mode, published version, API switch, conversations, messages of the last
24 hours), create, the settings page (every setting as a form field; for chatflow and
workflow apps a link to the workflow editor and the features), delete, and the pages mixed
in from versions, transfer and keys."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tenants.http import require_tenant
from tenants.models import ApiKey
from workflows.admin.forms import PublishForm

from ..api.manage.selectors import with_activity
from ..config import dump
from ..models import App, AppVersion, Conversation, Message
from ..services.apps import app_create, app_delete, app_update
from .base import logs_url, pretty
from .forms import AppCreateForm, ConfigForm, FeaturesForm, settings_fieldsets
from .keys import KeyPages
from .site import SitePages
from .transfer import TransferPages
from .versions import VersionPages

CREATE = ["mode", "name", "description", "icon", "icon_background"]
STAMPS = ["mode", "published", "updated_at", "updated_by"]


def on_off(value: bool) -> str:
    return "on" if value else "off"


@admin.register(App)
class AppAdmin(VersionPages, TransferPages, KeyPages, SitePages):
    """Operators see apps, their settings, versions and keys; builders and up create,
    change, import, publish, roll back and delete them and issue their keys. Every write goes
    through apps.services (and tenants.services for keys), which the audit trail records."""

    change_form_template = "apps/app_change_form.html"
    change_list_template = "apps/app_change_list.html"
    list_display = [
        "name_shown",
        "mode",
        "published",
        "api",
        "portal",
        "conversations",
        "recent_messages",
        "updated_at",
        "pages",
    ]
    list_filter = ["mode", "enable_api", "enable_site"]
    search_fields = ["name", "description"]

    def get_queryset(self, request):
        return with_activity(super().get_queryset(request))

    @admin.display(description="name", ordering="name")
    def name_shown(self, app: App) -> str:
        return format_html("{} {}", app.icon, app.name)

    @admin.display(description="published")
    def published(self, app: App) -> str:
        version = app.published_version
        return f"v{version.number}" if version is not None else "not yet"

    @admin.display(description="API", ordering="enable_api")
    def api(self, app: App) -> str:
        return on_off(app.enable_api)

    # Not `site`: that name is the app's reverse one-to-one to its Site, which the admin
    # would show (a query per row) instead of this.
    @admin.display(description="portal", ordering="enable_site")
    def portal(self, app: App) -> str:
        return on_off(app.enable_site)

    @admin.display(description="conversations", ordering="conversation_total")
    def conversations(self, app: App) -> str:
        total = getattr(app, "conversation_total", 0)
        return format_html('<a href="{}">{}</a>', logs_url(app), total)

    @admin.display(description="messages, 24 h", ordering="messages_24h")
    def recent_messages(self, app: App) -> str:
        total = getattr(app, "messages_24h", 0)
        return format_html('<a href="{}">{}</a>', logs_url(app, "message", since="24h"), total)

    @admin.display(description="")
    def pages(self, app: App) -> str:
        links = [
            (logs_url(app), "Logs"),
            (self.url("keys", app.pk), "API keys"),
            (self.url("site", app.pk), "Portal"),
        ]
        if app.workflow_id:
            links.append(
                (reverse("admin:workflows_workflow_change", args=[app.workflow_id]), "Workflow")
            )
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="workflow")
    def workflow_link(self, app: App) -> str:
        if app.workflow_id is None:
            return "—"
        url = reverse("admin:workflows_workflow_change", args=[app.workflow_id])
        return format_html(
            '<a href="{}" id="weft-workflow-link">Edit the workflow</a> (its graph, '
            "variables and models; publish the app here to run the new graph)",
            url,
        )

    @admin.display(description="settings")
    def settings_shown(self, app: App) -> str:
        settings = app.config
        if app.runs_workflow and app.workflow is not None:
            settings = app.workflow.features or {}
        return format_html('<pre class="weft-json" id="weft-settings">{}</pre>', pretty(settings))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AppCreateForm
        elif not self.has_change_permission(request, obj):
            kwargs["form"] = forms.ModelForm  # a view-only page: nothing to edit
        else:
            kwargs["form"] = FeaturesForm if obj.runs_workflow else ConfigForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": CREATE})]
        stamps = ("Details", {"fields": STAMPS})
        if not self.has_change_permission(request, obj):
            shown = ["name", "description", "icon", *STAMPS, "enable_api", "enable_site"]
            if obj.runs_workflow:
                shown.append("workflow_link")
            limits = ["max_active_requests", "api_rpm", "end_user_rpm"]
            return [(None, {"fields": [*shown, *limits, "settings_shown"]})]
        fieldsets = settings_fieldsets(obj.mode)
        if obj.runs_workflow:
            name, options = fieldsets[0]
            fieldsets[0] = (name, {"fields": [*options["fields"], "workflow_link"]})
        return [*fieldsets, stamps]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [*STAMPS, "workflow_link", "settings_shown"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            settings: dict[str, Any] = {}
            if isinstance(form, ConfigForm):
                settings["config"] = dump(form.config)
            elif isinstance(form, FeaturesForm):
                settings["features"] = dump(form.features)
            saved = app_update(
                tenant=obj.tenant,
                app=obj,
                updated_by=request.user,
                **form.service_arguments(),
                **settings,
            )
        else:
            data = form.cleaned_data
            saved = app_create(
                tenant=require_tenant(request),
                name=data["name"],
                mode=data["mode"],
                description=data["description"],
                icon=data["icon"],
                icon_background=data["icon_background"],
                created_by=request.user,
            )
        obj.__dict__.update(saved.__dict__)

    def response_add(self, request, obj, post_url_continue=None):
        # A new app is set up on its settings page next.
        if "_addanother" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(
            request,
            f"Created “{obj}”. Set it up below, then publish it for the API and the portal.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self.url("change", obj.pk))

    def delete_model(self, request, obj) -> None:
        app_delete(tenant=obj.tenant, app=obj)

    def delete_queryset(self, request, queryset) -> None:
        for app in queryset.select_related("tenant"):
            self.delete_model(request, app)

    def get_deleted_objects(self, objs, request):
        """A summary (apps, versions, conversations, messages, keys), not one line per
        message."""
        apps = list(objs)
        refused = {"app" for app in apps if not self.may(request, "manage", app)}
        ids = [app.pk for app in apps]
        counts = {
            "apps": len(apps),
            "versions": AppVersion.dangerously_unscoped.filter(app_id__in=ids).count(),
            "conversations": Conversation.dangerously_unscoped.filter(app_id__in=ids).count(),
            "messages": Message.dangerously_unscoped.filter(app_id__in=ids).count(),
            "API keys": ApiKey.dangerously_unscoped.filter(
                kind=ApiKey.Kind.APP, app_id__in=ids
            ).count(),
        }
        return [str(app) for app in apps], counts, refused, []

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._app_context(request, obj, context))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _app_context(self, request, app: App, context: dict[str, Any]) -> dict[str, Any]:
        form = context["adminform"].form if "adminform" in context else None
        versions = app.versions.select_related("created_by", "workflow_version").order_by("-number")
        return {
            "versions": versions,
            "publish_form": PublishForm(),
            "may_manage": self.may(request, "manage", app),
            "may_logs": self.may(request, "logs", app),
            "logs_url": logs_url(app),
            "messages_url": logs_url(app, "message"),
            "keys_url": self.url("keys", app.pk),
            "variables": getattr(form, "variables", None),
            "settings_error": getattr(form, "settings_error", ""),
        }

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_import": self.may(request, "manage")}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            *self.transfer_urls(),
            *self.version_urls(),
            *self.key_urls(),
            *self.site_urls(),
            *super().get_urls(),
        ]
