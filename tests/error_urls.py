"""URLs used by the error-envelope tests: the real ones plus views that fail on purpose."""

from django.urls import path
from rest_framework.decorators import api_view, authentication_classes, permission_classes

from config.urls import urlpatterns as real_urlpatterns
from tenants.models import Membership


def boom(request):
    raise RuntimeError("this must not leak")


def tenantless(request):
    return list(Membership.objects.all())


@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def drf_boom(request):
    raise ZeroDivisionError("nor this")


urlpatterns = [
    path("api/test/boom", boom),
    path("api/test/drf-boom", drf_boom),
    path("v1/test/boom", boom),
    path("api/test/tenantless", tenantless),
    *real_urlpatterns,
]
handler404 = "config.urls.handler404"
handler500 = "config.urls.handler500"
