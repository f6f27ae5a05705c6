from django.urls import re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("invoices", views.InvoiceViewSet, basename="invoice")

urlpatterns = [
    re_path(r"^usage/?$", views.UsageView.as_view({"get": "retrieve"}), name="billing-usage"),
    *router.urls,
]
