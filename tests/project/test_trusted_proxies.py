"""X-Forwarded-For and X-Forwarded-Proto count only from a peer in TRUSTED_PROXIES (``inbox_project.proxies``):
from anyone else they are removed, the request is not https because of them, and the sign-in lockout, audit events
and API throttles key on the real peer. Behind trusted proxies the client is the right-most untrusted address."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from inbox.api.throttling import TokenRateThrottle
from inbox.models import AuditEvent
from inbox_project import proxies

PROXY = "10.0.0.2"
PASSWORD = "correct-horse-battery"
LIMIT = 3


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = [PROXY, "10.1.0.0/16"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # as settings.py sets it then


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.SECURE_SSL_REDIRECT = False


# --- The rule ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "peer, forwarded, client",
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer's header is its own claim
        (PROXY, None, PROXY),
        (PROXY, "198.51.100.1", "198.51.100.1"),
        (PROXY, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the left part is the client's to write
        (PROXY, "6.6.6.6, 198.51.100.1, 10.1.4.5", "198.51.100.1"),  # a second trusted hop is skipped
        (PROXY, "10.1.4.5, 10.1.4.6", "10.1.4.5"),  # all trusted: the farthest
        (PROXY, "6.6.6.6, not-an-address", PROXY),  # garbled: the last address vouched for
        (PROXY, "[2001:db8::5]:4711", "2001:db8::5"),
        (PROXY, "198.51.100.1:5123", "198.51.100.1"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),  # IPv4-mapped peer is the IPv4 proxy
        ("", "198.51.100.1", None),
    ],
)
def test_the_client_is_the_right_most_untrusted_address(behind_proxy, peer, forwarded, client):
    assert proxies.client_address(peer, forwarded) == client


def test_without_trusted_proxies_the_client_is_always_the_peer(settings):
    settings.TRUSTED_PROXIES = []
    assert proxies.client_address("127.0.0.1", "198.51.100.1") == "127.0.0.1"


def test_the_default_trusts_no_proxy_and_no_forwarded_scheme():
    from inbox_project import settings as project_settings

    assert project_settings.TRUSTED_PROXIES == []
    assert project_settings.SECURE_PROXY_SSL_HEADER is None
    assert project_settings.MIDDLEWARE[0] == "inbox_project.proxies.ForwardedHeadersMiddleware"
    assert project_settings.AXES_CLIENT_IP_CALLABLE == "inbox_project.proxies.client_ip"


def test_a_websocket_scope_follows_the_same_rule(behind_proxy):
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.1")]
    assert proxies.scope_client_ip({"client": (PROXY, 5000), "headers": headers}) == "198.51.100.1"
    assert proxies.scope_client_ip({"client": ("203.0.113.9", 5000), "headers": headers}) == "203.0.113.9"


# --- Forged headers from an untrusted client ------------------------------------------------------------------


def test_forged_forwarded_headers_from_an_untrusted_client_are_removed_and_not_https(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # even were it set
    response = client.get(
        reverse("login"),
        REMOTE_ADDR="203.0.113.9",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_FOR="1.2.3.4",
    )
    request = response.wsgi_request
    assert not request.is_secure()
    assert "HTTP_X_FORWARDED_PROTO" not in request.META and "HTTP_X_FORWARDED_FOR" not in request.META
    assert proxies.client_ip(request) == "203.0.113.9"


def test_a_trusted_proxy_says_https(client, behind_proxy):
    response = client.get(reverse("login"), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")
    assert response.wsgi_request.is_secure()


def sign_in(client, password, *, address, forwarded=None, username="nurse"):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **extra
    )


def test_a_forged_forwarded_for_does_not_escape_the_lockout(client, nurse):
    for attempt in range(LIMIT):
        sign_in(client, "wrong-password", address="203.0.113.9", forwarded=f"198.51.100.{attempt}")
    response = sign_in(client, PASSWORD, address="203.0.113.9", forwarded="198.51.100.200")
    assert response.status_code == 429  # keyed on the real peer, whatever it claims


def test_a_forged_forwarded_for_cannot_lock_out_someone_else(client, nurse):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password", address="203.0.113.9", forwarded="198.51.100.7")
    assert sign_in(client, PASSWORD, address="198.51.100.7").status_code == 302


def test_behind_a_trusted_proxy_two_clients_have_independent_lockouts(client, nurse, behind_proxy):
    for _ in range(LIMIT):
        sign_in(client, "wrong-password", address=PROXY, forwarded="6.6.6.6, 198.51.100.1")
    assert sign_in(client, PASSWORD, address=PROXY, forwarded="198.51.100.1").status_code == 429
    # Someone else behind the same proxy is not locked out by it.
    response = sign_in(client, PASSWORD, address=PROXY, forwarded="198.51.100.2")
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).get().ip == "198.51.100.2"


def test_audit_events_record_the_real_peer_of_an_untrusted_client(client, nurse):
    sign_in(client, PASSWORD, address="203.0.113.9", forwarded="198.51.100.7")
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN).ip == "203.0.113.9"


def test_api_throttles_key_on_the_same_address(behind_proxy):
    forged = RequestFactory().get("/api/v1/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert TokenRateThrottle().get_ident(forged) == "203.0.113.9"
    proxied = RequestFactory().get(
        "/api/v1/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.1"
    )
    assert TokenRateThrottle().get_ident(proxied) == "198.51.100.1"
