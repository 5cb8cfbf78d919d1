"""Rate limits per API token (a session is limited per user); reads and writes have their own rates
(``API_RATE_READ`` / ``API_RATE_WRITE``)."""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from adminportal.models import ApiToken
from inbox_project import proxies


class TokenRateThrottle(SimpleRateThrottle):
    def allow_request(self, request, view):
        self.scope = "api-read" if request.method in ("GET", "HEAD", "OPTIONS") else "api-write"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self):
        # Read at each request (not frozen at import) so a changed setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def get_ident(self, request):
        # DRF's own believes X-Forwarded-For from anyone (NUM_PROXIES unset): the trusted-proxies rule instead.
        return proxies.client_ip(request) or ""

    def __init__(self):  # the scope (and so the rate) is chosen per request in allow_request
        pass
