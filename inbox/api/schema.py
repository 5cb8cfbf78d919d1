"""OpenAPI descriptions of the API's authentication (drf-spectacular extensions, loaded by ``inbox.api.urls``)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "inbox.api.authentication.BearerTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token created in the Admin Portal → Integrations (shown once): "
            "`Authorization: Bearer cit_…`.",
        }


class PortalSessionScheme(OpenApiAuthenticationExtension):
    target_class = "inbox.api.authentication.PortalSessionAuthentication"
    name = "portalSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The Care Portal session.",
        }
