"""WebSocket routes; each domain app adds its consumers here."""

from django.urls import re_path

from apps.consumers import ServiceApiConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/v1/?$", ServiceApiConsumer.as_asgi(), name="ws-service-api"),
]
