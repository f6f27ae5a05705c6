"""The management API of apps (`/api/apps/`)."""

urlpatterns: list = []
