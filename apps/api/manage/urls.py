"""Routes of the apps management API, included at `/api/apps/` (before the tenants API).

Written out rather than routed: the layout (import, logs, versions by number, keys of an
app) is not a router's. Scripts write paths with and without the final slash; both are
taken."""

from django.urls import re_path

from . import history, logs, views

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
APP = rf"^(?P<pk>{UUID})"
OF_APP = rf"^(?P<app_pk>{UUID})"
VERSION = rf"{OF_APP}/versions/(?P<number>[0-9]{{1,9}})"
KEY = rf"{OF_APP}/keys/(?P<key_pk>{UUID})"

apps = views.AppViewSet.as_view
versions = history.AppVersionViewSet.as_view
keys = history.AppKeyViewSet.as_view
conversations = logs.ConversationViewSet.as_view
messages = logs.MessageViewSet.as_view
feedbacks = logs.FeedbackViewSet.as_view

urlpatterns = [
    re_path(r"^$", apps({"get": "list", "post": "create"}), name="app-list"),
    re_path(r"^import/?$", apps({"post": "import_dsl"}), name="app-import"),
    re_path(r"^conversations/?$", conversations({"get": "list"}), name="app-conversations"),
    re_path(
        rf"^conversations/(?P<pk>{UUID})/?$",
        conversations({"get": "retrieve"}),
        name="app-conversation",
    ),
    re_path(r"^messages/?$", messages({"get": "list"}), name="app-messages"),
    re_path(rf"^messages/(?P<pk>{UUID})/?$", messages({"get": "retrieve"}), name="app-message"),
    re_path(
        rf"^messages/(?P<pk>{UUID})/feedbacks/?$",
        messages({"post": "rate"}),
        name="app-message-rate",
    ),
    re_path(r"^feedbacks/?$", feedbacks({"get": "list"}), name="app-feedbacks"),
    re_path(
        rf"{APP}/?$",
        apps({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="app-detail",
    ),
    re_path(rf"{APP}/publish/?$", apps({"post": "publish"}), name="app-publish"),
    re_path(rf"{APP}/export/?$", apps({"get": "export"}), name="app-export"),
    re_path(rf"{APP}/site/?$", apps({"get": "site", "patch": "site_update"}), name="app-site"),
    re_path(rf"{APP}/site/new-code/?$", apps({"post": "site_code"}), name="app-site-code"),
    re_path(rf"{OF_APP}/versions/?$", versions({"get": "list"}), name="app-versions"),
    re_path(rf"{VERSION}/?$", versions({"get": "retrieve"}), name="app-version"),
    re_path(rf"{VERSION}/diff/?$", versions({"get": "diff"}), name="app-version-diff"),
    re_path(rf"{VERSION}/rollback/?$", versions({"post": "rollback"}), name="app-version-rollback"),
    re_path(rf"{OF_APP}/keys/?$", keys({"get": "list", "post": "create"}), name="app-keys"),
    re_path(rf"{KEY}/?$", keys({"delete": "destroy"}), name="app-key"),
    re_path(rf"{KEY}/revoke/?$", keys({"post": "revoke"}), name="app-key-revoke"),
]
