from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter(trailing_slash="/?")
router.register("members", views.MembershipViewSet, basename="member")
router.register("keys", views.ApiKeyViewSet, basename="apikey")

current_tenant = views.CurrentTenantView.as_view({"get": "retrieve", "patch": "partial_update"})

urlpatterns = [
    path("tenant/", current_tenant, name="current-tenant"),
    *router.urls,
]
