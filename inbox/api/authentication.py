"""How an API request says who it is: ``Authorization: Bearer <token>``, or the Care Portal session."""

from rest_framework import authentication, exceptions

from .tokens import token_for, touch


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer cit_…``. An unknown or revoked token is 401, never a fallback to the session."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be “Bearer <token>”.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        token = token_for(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is not valid or has been revoked.")
        touch(token)
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class PortalSessionAuthentication(authentication.SessionAuthentication):
    """The Care Portal's own session (signed-in staff, e.g. trying the API in /api/docs/); unsafe methods need the
    CSRF token like every portal form."""
