"""Outbound webhooks: subscriptions (created in the Admin Portal), the events they receive, signed deliveries.

Events follow the real-time hints (``inbox.events.publish_communication_changed``), after commit:
- ``communication.created`` — the first message of a new communication (inbound or started from the Inbox);
- ``message.created`` — every new inbound or outbound message (internal notes excluded);
- ``status.changed`` — set by hand, by "Send and Close", or by an inbound message reopening it;
- ``assignment.changed`` — assigned, reassigned or unassigned.
A subscription hears only about communications its integration user may see (the one access rule), and the payload
carries ids and a few fields — never message bodies or patient details: the receiver reads those through the API,
which checks access and audits the read.

Signature: ``X-CareInbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from adminportal.models import WebhookDelivery, WebhookEvent, WebhookSubscription
from careportal.access import can_view_communication
from designer.models import Policy
from designer.selectors import has_policy
from inbox import audit

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-CareInbox-Signature"
USER_AGENT = "CareInbox-Webhooks/1"
MAX_ERROR_LENGTH = 2000


class WebhookError(Exception):
    """A refused subscription change; ``str(error)`` is fit to show."""


# --- Signing ------------------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does (the README has the same snippet): recompute, compare in constant time, and refuse a
    timestamp older than ``tolerance`` seconds (a replayed delivery)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --- Subscriptions --------------------------------------------------------------------------------------------


def validate_url(url: str) -> str:
    """HTTPS only; plain ``http://`` only to a loopback address in development (DEBUG) or when
    ``WEBHOOK_ALLOW_LOCAL_HTTP`` is set (the tests' local receiver). No credentials in the URL. The host must not be
    (or resolve to) an address inside the organisation's own networks (``refusal_for_host``). A name that does not
    resolve now is accepted: delivery checks again, against the address it connects to."""
    url = (url or "").strip()
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise WebhookError("Enter a full https:// address with a valid port.") from None
    if not parts.hostname or parts.username or parts.password:
        raise WebhookError("Enter a full https:// address without a user name or password.")
    if parts.scheme not in ("https", "http"):
        raise WebhookError("Webhook addresses must use https://.")
    if parts.scheme == "http":
        literal = _literal_address(parts.hostname)
        if (
            not (settings.DEBUG or settings.WEBHOOK_ALLOW_LOCAL_HTTP)
            or literal is None
            or not literal.is_loopback
        ):
            raise WebhookError("Webhook addresses must use https://.")
    try:
        refused = refusal_for_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError:
        return url  # not resolvable now (no DNS, a name not yet published): delivery checks again
    if refused:
        raise WebhookError(refused)
    return url


# --- Where deliveries may go (SSRF) -----------------------------------------------------------------------------
# A subscription's URL is chosen by an administrator, but it must not become a way to reach what only the server
# can: its loopback services, the cloud metadata endpoint (169.254.169.254), the private network behind it.


class TargetRefused(Exception):
    """A webhook target whose address is not allowed; ``str(error)`` is fit to show."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _allowed_networks():
    networks = []
    for entry in settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS or ():
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            logger.error(
                "WEBHOOK_ALLOWED_PRIVATE_NETWORKS entry is not a network; ignored", extra={"entry": entry}
            )
    return networks


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, however written: ``127.0.0.1``, ``::1``, ``::ffff:10.0.0.1``, and the
    legacy forms the C resolver also accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``)."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
        if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
            try:
                address = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(address: IPAddress) -> str | None:
    """Why webhooks may not be delivered to ``address``, or None when they may. An IPv6 address carrying an IPv4
    one (mapped, 6to4, Teredo, NAT64) is judged by the IPv4 address it leads to."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    if any(address in network for network in _allowed_networks()):
        return None
    kinds = (
        ("is_unspecified", "an unspecified"),
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_reserved", "a reserved"),
        ("is_private", "a private-network"),
    )
    for attribute, kind in kinds:
        if getattr(address, attribute):
            return f"This address leads to {kind} address ({address}), which webhooks may not reach."
    if not address.is_global:
        return f"This address leads to a non-public address ({address}), which webhooks may not reach."
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` names (a literal one, or what DNS answers now). Raises OSError when it resolves to
    nothing."""
    literal = _literal_address(host)
    if literal is not None:
        return [literal]
    found = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address not in found:
            found.append(address)
    if not found:
        raise OSError(f"{host} did not resolve")
    return found


def refusal_for_host(host: str, port: int) -> str | None:
    """Why ``host`` may not be a webhook target: every address it resolves to must be allowed (one bad answer
    among good ones would be chosen some of the time). Raises OSError when it does not resolve."""
    for address in resolve(host, port):
        refused = address_refusal(address)
        if refused:
            return refused
    return None


def pinned_address(url: str) -> str:
    """The one address a delivery to ``url`` connects to, resolved now and checked (raises TargetRefused); the
    connection is made to it, so a DNS answer that changes between this check and the connect cannot move the
    delivery elsewhere."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(parts.hostname or "", port)
    for address in addresses:
        refused = address_refusal(address)
        if refused:
            raise TargetRefused(refused)
    return str(addresses[0])


@transaction.atomic
def create_subscription(
    *, actor, user, name: str, url: str, event_types: list[str], request=None
) -> WebhookSubscription:
    """A new subscription for ``user`` (who must hold Inbox API); its secret is on the returned row, shown once."""
    name = " ".join((name or "").split())[:80]
    if not name:
        raise WebhookError("Name the subscription.")
    url = validate_url(url)
    if len(url) > 500:
        raise WebhookError("The address is too long.")
    chosen = [e for e in WebhookEvent.values if e in set(event_types or [])]
    if not chosen or len(chosen) != len(set(event_types)):
        raise WebhookError("Choose at least one event type from the list.")
    if not user.is_active or not has_policy(user, Policy.INBOX_API):
        raise WebhookError(f"{user.full_name}'s role does not hold the Inbox API policy.")
    subscription = WebhookSubscription.objects.create(
        user=user, name=name, url=url, event_types=chosen, secret="whsec_" + secrets.token_urlsafe(32),
        created_by=actor,
    )  # fmt: skip
    _audit(actor, request, subscription, "webhook.created", url=url, events=chosen)
    return subscription


@transaction.atomic
def set_active(
    *, actor, subscription: WebhookSubscription, is_active: bool, request=None
) -> WebhookSubscription:
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.is_active != is_active:
        subscription.is_active = is_active
        subscription.save(update_fields=["is_active"])
        _audit(actor, request, subscription, "webhook.enabled" if is_active else "webhook.disabled")
    return subscription


def resume(*, actor, subscription: WebhookSubscription, request=None) -> WebhookSubscription:
    """Un-pause: clears the failure count and sends what waited (undelivered deliveries with attempts left)."""
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.paused_at is None:
            return subscription
        subscription.paused_at = None
        subscription.consecutive_failures = 0
        subscription.save(update_fields=["paused_at", "consecutive_failures"])
        _audit(actor, request, subscription, "webhook.resumed")
        waiting = list(
            subscription.deliveries.filter(
                delivered_at__isnull=True, attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS
            )
            .order_by("created_at", "id")
            .values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: _enqueue(waiting))
    return subscription


def _audit(actor, request, subscription, change: str, **detail) -> None:
    audit.record(
        actor=actor, action=audit.Action.SETTING_CHANGED, request=request, obj=subscription,
        detail={"change": change, "name": subscription.name, "user": subscription.user_id, **detail},
    )  # fmt: skip


# --- Events ------------------------------------------------------------------------------------------------------


def events_for_change(communication, kind: str) -> list[tuple[str, dict]]:
    """(event type, extra data) for one ``communication.changed`` hint, read inside the changing transaction."""
    if kind == "status":
        return [(WebhookEvent.STATUS_CHANGED, {})]
    if kind == "assignment":
        return [(WebhookEvent.ASSIGNMENT_CHANGED, {})]
    if kind != "message":
        return []
    messages = communication.messages.filter(is_internal_note=False)
    message = messages.order_by("-created_at", "-id").first()
    if message is None:
        return []
    data = {
        "message": {"id": message.pk, "direction": message.direction, "created_at": _iso(message.created_at)}
    }
    found = []
    is_first = not messages.exclude(pk=message.pk).exists()
    if is_first:
        found.append((WebhookEvent.COMMUNICATION_CREATED, {}))
    found.append((WebhookEvent.MESSAGE_CREATED, data))
    # This message changed the status when the status's own time stamp is not older than the message: an inbound
    # message reopening it (opened_at = the message's time), or "Send and Close" (closed_at = after the message).
    changed_at = communication.opened_at if communication.status == "open" else communication.closed_at
    if not is_first and changed_at is not None and changed_at >= message.created_at:
        found.append((WebhookEvent.STATUS_CHANGED, {"via": "message", "message_id": message.pk}))
    return found


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def payload_for(event: str, communication, extra: dict) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": str(event),
        "created_at": _iso(timezone.now()),
        "data": {
            "communication": {
                "id": communication.pk,
                "url": f"/api/v1/communications/{communication.pk}/",
                "channel": communication.channel,
                "status": communication.status,
                "is_unrecognized": communication.is_unrecognized,
                "patient_id": communication.patient_id,
                "assignee_id": communication.assignee_id,
            },
            **extra,
        },
    }


RELEVANT_KINDS = frozenset({"message", "status", "assignment"})


def communication_changed(communication, *, kind: str) -> None:
    """Called by ``inbox.events`` inside the changing transaction: works out the events now (the rows as this change
    left them), and queues deliveries after commit — a rolled-back change sends nothing."""
    if kind not in RELEVANT_KINDS:
        return
    try:
        if not WebhookSubscription.objects.filter(is_active=True).exists():
            return  # the usual case without integrations: one cheap query, nothing else
        found = events_for_change(communication, kind)
    except Exception:  # a webhook problem must never break the change it follows
        logger.exception("could not work out webhook events", extra={"communication_id": communication.pk})
        return
    if not found:
        return
    payloads = [(event, payload_for(event, communication, extra)) for event, extra in found]
    communication_id = communication.pk
    transaction.on_commit(lambda: _queue(communication_id, payloads))


def _queue(communication_id: int, payloads: list[tuple[str, dict]]) -> None:
    from inbox.models import Communication

    try:
        subscriptions = list(WebhookSubscription.objects.filter(is_active=True).select_related("user"))
        if not subscriptions:
            return
        communication = Communication.objects.get(pk=communication_id)
        created = []
        for subscription in subscriptions:
            wanted = [(e, p) for e, p in payloads if e in subscription.event_types]
            if not wanted or not _may_receive(subscription.user, communication):
                continue
            for event, payload in wanted:
                delivery = WebhookDelivery.objects.create(
                    subscription=subscription, event=event, payload=payload
                )
                if (
                    subscription.paused_at is None
                ):  # a paused subscription keeps its events for when it resumes
                    created.append(delivery.pk)
        _enqueue(created)
    except Exception:
        logger.exception("could not queue webhook deliveries", extra={"communication_id": communication_id})


def _may_receive(user, communication) -> bool:
    return (
        user.is_active and has_policy(user, Policy.INBOX_API) and can_view_communication(user, communication)
    )


def _enqueue(delivery_ids: list[int]) -> None:
    from .tasks import deliver_webhook

    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)


# --- Delivery --------------------------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> int:
    """Wait before attempt ``attempts + 1``: base × 2^(attempts − 1), at most an hour (30 s, 1 min, 2 min, …)."""
    return min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), 3600)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, *args, **kwargs
    ):  # a redirect is an answer, not a place to send the payload again
        return None


def _pinned(connection_class, address: str):
    """``connection_class`` connecting to ``address`` whatever the URL's host resolves to by then; the Host header
    and (for https) the TLS server name and certificate check still use the URL's host."""

    class Pinned(connection_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._create_connection = lambda target, *rest: socket.create_connection(
                (address, target[1]), *rest
            )

    return Pinned


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def http_open(self, req):
        return self.do_open(_pinned(http.client.HTTPConnection, self.address), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def https_open(self, req):
        return self.do_open(_pinned(http.client.HTTPSConnection, self.address), req, context=self._context)


def _opener_for(address: str):
    # No proxies from the environment: the checked address must be the one connected to.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _NoRedirects,
        _PinnedHTTPHandler(address),
        _PinnedHTTPSHandler(address),
    )


REFUSED_PREFIX = "Refused: "


def _post(
    subscription: WebhookSubscription, delivery: WebhookDelivery, body: bytes
) -> tuple[int | None, str]:
    """One HTTP attempt: (status code or None, error text or ""). A target whose address is not allowed is not
    contacted: the error starts with ``REFUSED_PREFIX``."""
    try:
        address = pinned_address(subscription.url)
    except TargetRefused as refused:
        return None, f"{REFUSED_PREFIX}{refused}"
    except (OSError, ValueError) as error:  # DNS did not answer: an ordinary failed attempt, retried
        return None, f"{error.__class__.__name__}: {error}"
    request = urllib.request.Request(  # noqa: S310 (the URL was validated, and the address it reaches just now)
        subscription.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-CareInbox-Event": delivery.event,
            "X-CareInbox-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: sign(subscription.secret, body),
        },
    )
    try:
        with _opener_for(address).open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read(1024)
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"{error.__class__.__name__}: {getattr(error, 'reason', error)}"


def attempt(delivery_id: int) -> bool | None:
    """Try one delivery once. True: delivered (or already was); False: failed, retry due (``next_attempt_at``);
    None: nothing more to do (no attempts left, subscription paused, disabled or gone)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("subscription")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None
        if delivery.delivered_at is not None:
            return True
        subscription = delivery.subscription
        if not subscription.is_active or subscription.paused_at is not None:
            return None
        if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            return None
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        code, error = _post(subscription, delivery, body)
        now = timezone.now()
        delivery.attempts += 1
        delivery.last_status_code = code
        ok = code is not None and 200 <= code < 300
        delivery.last_error = "" if ok else (error or f"HTTP {code}")[:MAX_ERROR_LENGTH]
        fields = ["attempts", "last_status_code", "last_error", "next_attempt_at"]
        if ok:
            delivery.delivered_at, delivery.next_attempt_at = now, None
            fields.append("delivered_at")
        elif error.startswith(REFUSED_PREFIX):  # retrying would be refused the same way
            delivery.next_attempt_at = None
            logger.warning("webhook delivery refused", extra={"delivery_id": delivery_id, "reason": error})
        elif delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
        else:
            delivery.next_attempt_at = None
        delivery.save(update_fields=fields)
        _count(subscription.pk, ok)
    logger.info(
        "webhook delivery attempt",
        extra={"delivery_id": delivery_id, "status_code": code, "ok": ok, "attempts": delivery.attempts},
    )
    if ok:
        return True
    return False if delivery.next_attempt_at is not None else None


def _count(subscription_id: int, ok: bool) -> None:
    """Consecutive failed attempts; ``WEBHOOK_PAUSE_AFTER_FAILURES`` of them in a row pause the subscription."""
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
    if ok:
        if subscription.consecutive_failures:
            subscription.consecutive_failures = 0
            subscription.save(update_fields=["consecutive_failures"])
        return
    subscription.consecutive_failures += 1
    fields = ["consecutive_failures"]
    if (
        subscription.paused_at is None
        and subscription.consecutive_failures >= settings.WEBHOOK_PAUSE_AFTER_FAILURES
    ):
        subscription.paused_at = timezone.now()
        fields.append("paused_at")
        logger.warning("webhook subscription paused", extra={"subscription_id": subscription_id})
    subscription.save(update_fields=fields)


SWEEP_GRACE = timedelta(minutes=5)


def due_deliveries(limit: int = 500) -> list[int]:
    """Deliveries whose retry was due more than five minutes ago: their retry task was lost (a worker restart, a
    broker outage), so the beat sweep queues them again. A retry merely running late is left to its own task."""
    return list(
        WebhookDelivery.objects.filter(
            delivered_at__isnull=True,
            next_attempt_at__lte=timezone.now() - SWEEP_GRACE,
            subscription__is_active=True,
            subscription__paused_at__isnull=True,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
