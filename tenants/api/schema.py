"""How the management API's authentication appears in its OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ManagementKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api.authentication.ManagementKeyAuthentication"
    name = "managementKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A management key: `Authorization: Bearer wk-…`.",
        }


class ConsoleSessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api.authentication.ConsoleSessionAuthentication"
    name = "consoleSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A signed-in console session (writes need the CSRF token).",
        }
