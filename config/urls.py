from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz
from tenants.api.errors import json_or_html
from tenants.views import brand_asset, service_api_fallback

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("branding/<uuid:tenant_id>/<str:kind>", brand_asset, name="brand-asset"),
    path("", include("apps.portal.urls")),
    path("admin/", admin.site.urls),
    path(
        "accounts/password-reset/",
        auth_views.PasswordResetView.as_view(),
        name="admin_password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(post_reset_login=False),
        name="password_reset_confirm",
    ),
    path(
        "accounts/set-password/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/providers/", include("providers.api.urls")),
    path("api/workflows/", include("workflows.api.urls")),
    path("api/apps/", include("apps.api.manage.urls")),
    path("api/billing/", include("billing.api.urls")),
    path("api/", include("tenants.api.urls")),
    path("v1/", include("knowledge.api.urls")),
    path("v1/", include("apps.api.service.urls")),
    re_path(r"^v1/(?P<path>.*)$", service_api_fallback, name="service-api-fallback"),
]

handler400 = json_or_html(400, "bad_request", "Bad request.", defaults.bad_request)
handler403 = json_or_html(403, "forbidden", "Forbidden.", defaults.permission_denied)
handler404 = json_or_html(404, "not_found", "Not found.", defaults.page_not_found)
handler500 = json_or_html(500, "internal_error", "Internal server error.", defaults.server_error)
