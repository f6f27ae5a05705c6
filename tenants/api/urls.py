from django.urls import re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
# Scripts write paths with and without the final slash; take both (no redirects on an API).
router.trailing_slash = "/?"
router.register("members", views.MembershipViewSet, basename="member")
router.register("keys", views.ApiKeyViewSet, basename="apikey")

current_tenant = views.CurrentTenantView.as_view({"get": "retrieve", "patch": "partial_update"})

urlpatterns = [
    re_path(r"^tenant/?$", current_tenant, name="current-tenant"),
    *router.urls,
]
