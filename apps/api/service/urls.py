"""The Service API (`/v1/`, Dify-compatible), for `app-` keys."""

urlpatterns: list = []
