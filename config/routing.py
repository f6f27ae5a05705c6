"""WebSocket routes; each domain app adds its consumers here."""

from django.urls import re_path

from apps.consumers import ServiceApiConsumer
from apps.portal.consumers import PortalConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/v1/?$", ServiceApiConsumer.as_asgi(), name="ws-service-api"),
    re_path(r"^ws/c/(?P<code>[A-Za-z0-9_-]{1,64})/?$", PortalConsumer.as_asgi(), name="ws-portal"),
]
