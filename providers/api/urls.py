from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
# Scripts write paths with and without the final slash; take both (no redirects on an API).
router.trailing_slash = "/?"
router.register("credentials", views.CredentialViewSet, basename="provider-credential")
router.register("models", views.CatalogModelViewSet, basename="provider-model")
router.register("defaults", views.DefaultViewSet, basename="provider-default")
router.register("usage", views.UsageViewSet, basename="provider-usage")

urlpatterns = router.urls
