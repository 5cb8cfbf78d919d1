"""Who the client is behind reverse proxies: the one rule for the client address (sign-in lockout, audit events,
API throttles, the patient chat) and for which ``X-Forwarded-*`` headers count.

``TRUSTED_PROXIES`` (IPs or CIDRs, default none) names the proxies in front of the app. Only when the immediate
peer (``REMOTE_ADDR``) is one of them are ``X-Forwarded-For`` and ``X-Forwarded-Proto`` believed; the client is
then the right-most address in ``X-Forwarded-For`` that is not itself a trusted proxy (everything left of it was
written by the client and proves nothing). From any other peer the headers are removed before anything reads them,
and the client is the peer."""

import ipaddress
import logging
from functools import lru_cache

from django.conf import settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)


@lru_cache(maxsize=8)
def _networks(configured: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in configured:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.error(
                "TRUSTED_PROXIES entry is not an IP address or network; ignored", extra={"entry": entry}
            )
    return tuple(networks)


def trusted_networks():
    """The configured proxies, read at each call (a changed setting takes effect; the parse is memoised)."""
    return _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))


def parse_address(value: str | None) -> IPAddress | None:
    """An address as a peer or a proxy reports it: ``203.0.113.9``, ``2001:db8::1``, ``[2001:db8::1]:443``,
    ``203.0.113.9:5123``; IPv4-mapped IPv6 (``::ffff:203.0.113.9``) is the IPv4 address. Anything else: None."""
    text = (value or "").strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted_proxy(address: str | IPAddress | None) -> bool:
    parsed = (
        address
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
        else parse_address(address)
    )
    return parsed is not None and any(parsed in network for network in trusted_networks())


def client_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address from the immediate peer and the ``X-Forwarded-For`` it sent (the rule above)."""
    current = parse_address(peer)
    if current is None:
        return None
    if not forwarded_for or not is_trusted_proxy(current):
        return str(current)
    for hop in reversed(forwarded_for.split(",")):
        if not is_trusted_proxy(current):
            break
        reported = parse_address(hop)
        if reported is None:  # a trusted proxy would not write this: keep the last address we can vouch for
            break
        current = reported
    return str(current)


def client_ip(request) -> str | None:
    """The client address of an HTTP request (``AXES_CLIENT_IP_CALLABLE``, audit events, API throttles)."""
    if request is None:
        return None
    meta = request.META
    return client_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


def scope_client_ip(scope) -> str | None:
    """The same rule for an ASGI scope (a WebSocket connection)."""
    peer = (scope.get("client") or (None,))[0]
    forwarded = [
        value.decode("latin-1")
        for key, value in scope.get("headers") or []
        if key.lower() == b"x-forwarded-for"
    ]
    return client_address(peer, ",".join(forwarded) or None)


class ForwardedHeadersMiddleware:
    """First in ``MIDDLEWARE``: ``X-Forwarded-*`` (and ``Forwarded``) from a peer that is not a trusted proxy are
    dropped, so nothing later — ``SECURE_PROXY_SSL_HEADER``, django-axes, a view — can be fooled by a client that
    sends them itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if any(header in meta for header in FORWARDED_HEADERS) and not is_trusted_proxy(
            meta.get("REMOTE_ADDR")
        ):
            for header in FORWARDED_HEADERS:
                meta.pop(header, None)
        return self.get_response(request)
