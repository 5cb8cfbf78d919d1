"""Webhook targets inside the server's own networks are refused (SSRF): loopback, private, link-local (the cloud
metadata address), unspecified, multicast and reserved addresses, however written or resolved — at subscription
(a clear error in the Admin Portal) and again at delivery, against the address actually connected to. Only
WEBHOOK_ALLOWED_PRIVATE_NETWORKS opens a network. DNS is mocked: there is no outside network here."""

import socket

import pytest

from adminportal.models import WebhookDelivery, WebhookSubscription
from inbox.api import webhooks
from tests.api import test_webhooks as shared

pytestmark = pytest.mark.django_db
ALL_EVENTS = shared.ALL_EVENTS
receiver = shared.receiver  # the local receiver (http.server on 127.0.0.1)
PUBLIC = "93.184.216.34"
real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def _no_allowances(settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = []
    settings.WEBHOOK_ALLOW_LOCAL_HTTP = False
    settings.DEBUG = False
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_TIMEOUT_SECONDS = 5


@pytest.fixture
def dns(monkeypatch):
    """Names this test resolves (anything else, e.g. an IP literal, goes to the real resolver)."""
    answers: dict[str, list[str]] = {}
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    answers["asked"] = asked  # type: ignore[assignment]
    return answers


def subscribe(user, url):
    return webhooks.create_subscription(actor=None, user=user, name="EHR", url=url, event_types=ALL_EVENTS)


@pytest.mark.parametrize(
    "url, kind",
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://127.8.9.10/hook", "loopback"),
        ("https://localhost/hook", "loopback"),
        ("https://10.0.0.5/hook", "private-network"),
        ("https://172.16.4.2/hook", "private-network"),
        ("https://192.168.1.20/hook", "private-network"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("https://[fd12:3456::1]/hook", "private-network"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://[::ffff:169.254.169.254]/hook", "link-local"),
        ("https://[64:ff9b::a00:5]/hook", "private-network"),  # NAT64 of 10.0.0.5
        ("https://[2002:c0a8:0101::1]/hook", "private-network"),  # 6to4 of 192.168.1.1
        ("https://2130706433/hook", "loopback"),  # 127.0.0.1 as one decimal number
        ("https://0x7f.1/hook", "loopback"),
        ("https://0177.0.0.1/hook", "loopback"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://[::]/hook", "unspecified"),
        ("https://224.0.0.251/hook", "multicast"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://100.64.0.1/hook", "non-public"),  # carrier-grade NAT
        ("https://internal.example.org/hook", "private-network"),
        ("https://mixed.example.org/hook", "private-network"),
    ],
)
def test_targets_in_the_servers_own_networks_are_refused(api_user, dns, url, kind):
    dns["localhost"] = ["127.0.0.1", "::1"]
    dns["internal.example.org"] = ["10.20.30.40"]
    dns["mixed.example.org"] = [PUBLIC, "192.168.0.10"]  # one bad answer is enough
    with pytest.raises(webhooks.WebhookError, match=f"leads to an? {kind} address"):
        subscribe(api_user, url)
    assert not WebhookSubscription.objects.exists()


def test_decimal_plain_http_is_refused_too(api_user, settings):
    settings.WEBHOOK_ALLOW_LOCAL_HTTP = True  # even with local http allowed, the loopback network is not
    with pytest.raises(webhooks.WebhookError, match="loopback"):
        subscribe(api_user, "http://2130706433/")


def test_a_public_address_is_accepted(api_user, dns):
    dns["hooks.example.com"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    assert subscribe(api_user, "https://hooks.example.com/in").url == "https://hooks.example.com/in"
    assert subscribe(api_user, f"https://{PUBLIC}/in").pk


def test_a_name_that_does_not_resolve_now_is_left_to_delivery(api_user, monkeypatch):
    def nothing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nothing)
    assert subscribe(api_user, "https://not-yet.example.com/in").pk


def test_an_allowed_private_network_is_accepted(api_user, dns, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["10.20.0.0/16"]
    dns["internal.example.org"] = ["10.20.30.40"]
    assert subscribe(api_user, "https://internal.example.org/hook").pk
    with pytest.raises(webhooks.WebhookError, match="private-network"):
        subscribe(api_user, "https://10.21.0.1/hook")


def test_the_admin_portal_shows_the_refusal_on_the_address(client, administrator, api_user):
    client.force_login(administrator)
    response = client.post(
        "/admin-portal/integrations/webhooks/",
        {"webhook-user": api_user.pk, "webhook-name": "EHR", "webhook-url": "https://169.254.169.254/latest/",
         "webhook-event_types": ["message.created"]},
    )  # fmt: skip
    assert response.status_code == 422
    assert "link-local address (169.254.169.254), which webhooks may not reach" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


# --- At delivery: the address connected to ---------------------------------------------------------------------


def delivery_for(user, url) -> WebhookDelivery:
    subscription = WebhookSubscription.objects.create(
        user=user, name="EHR", url=url, event_types=ALL_EVENTS, secret="whsec_test"
    )
    return WebhookDelivery.objects.create(
        subscription=subscription, event="message.created", payload={"id": "1"}
    )


def test_a_name_that_now_resolves_to_a_private_address_is_refused_at_delivery_and_not_retried(
    api_user, dns, receiver
):
    port = receiver.url.split(":")[2].split("/")[0]
    dns["hooks.example.com"] = ["127.0.0.1"]  # changed since it was checked (DNS rebinding)
    delivery = delivery_for(api_user, f"http://hooks.example.com:{port}/care-inbox")

    assert webhooks.attempt(delivery.pk) is None  # nothing more to do
    delivery.refresh_from_db()
    assert receiver.requests == []  # never contacted
    assert delivery.attempts == 1 and delivery.delivered_at is None and delivery.next_attempt_at is None
    assert delivery.last_error.startswith("Refused: This address leads to a loopback address (127.0.0.1)")
    assert WebhookSubscription.objects.get().consecutive_failures == 1


def test_delivery_connects_to_the_address_it_checked_keeping_the_host(api_user, dns, receiver, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    port = receiver.url.split(":")[2].split("/")[0]
    dns["hooks.example.com"] = ["127.0.0.1"]
    delivery = delivery_for(api_user, f"http://hooks.example.com:{port}/care-inbox")

    assert webhooks.attempt(delivery.pk) is True
    headers, _ = receiver.requests[0]
    assert headers["host"] == f"hooks.example.com:{port}"
    assert dns["asked"] == ["hooks.example.com"]  # resolved once; the connection went to that answer


def test_delivery_ignores_proxies_from_the_environment(api_user, dns, receiver, settings, monkeypatch):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    monkeypatch.setenv("http_proxy", "http://10.9.9.9:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    delivery = delivery_for(api_user, receiver.url)
    assert webhooks.attempt(delivery.pk) is True
    assert len(receiver.requests) == 1


def test_an_unresolvable_name_at_delivery_is_an_ordinary_failed_attempt(api_user, monkeypatch):
    def nothing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nothing)
    delivery = delivery_for(api_user, "https://gone.example.com/in")
    assert webhooks.attempt(delivery.pk) is False  # retried later: DNS may answer again
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None and "gaierror" in delivery.last_error
