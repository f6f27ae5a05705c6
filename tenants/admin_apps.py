"""Django's admin app with Weft's console as its default site."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """Every app's `admin.site.register` lands in the console (tenants.admin_site)."""

    default_site = "tenants.admin_site.WeftAdminSite"
