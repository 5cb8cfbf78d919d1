"""Liveness (process up) and readiness (database, channel layer and broker reachable; an SMTP receiver answering,
when this process runs one or ``READYZ_SMTP`` names one) probes."""

import contextlib
import logging
import socket
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .celery import app as celery_app

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_channel_layer() -> None:
    """Round-trip one message through the layer (Redis in production, memory when embedded)."""
    layer = get_channel_layer()

    async def round_trip():
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz.ping", "token": token})
        reply = await layer.receive(channel)
        if reply.get("token") != token:
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(round_trip)()


def check_broker() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # embedded mode runs tasks in-process; there is no broker to reach
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


SMTP_TIMEOUT = 2.0  # seconds to connect and to read the greeting


def smtp_target() -> tuple[str, int] | None:
    """Where readiness checks an SMTP receiver: ``READYZ_SMTP`` (``host:port``), else the receiver embedded in this
    process when it was started here (``make run``); None when neither."""
    configured = (getattr(settings, "READYZ_SMTP", "") or "").strip()
    if configured:
        host, _, port = configured.rpartition(":")
        return (host.strip("[]") or "127.0.0.1"), int(port)
    from .embedded import embedded_address

    return embedded_address()


def check_smtp(host: str, port: int) -> None:
    """The receiver accepts a connection and greets with 220 (then we say QUIT)."""
    with socket.create_connection((host, port), timeout=SMTP_TIMEOUT) as conn:
        conn.settimeout(SMTP_TIMEOUT)
        greeting = conn.recv(512)
        if not greeting.startswith(b"220"):
            raise ConnectionError(f"unexpected SMTP greeting {greeting[:60]!r}")
        with contextlib.suppress(OSError):  # the greeting was the check; a closed socket at QUIT is fine
            conn.sendall(b"QUIT\r\n")


CHECKS = {"database": check_database, "channel_layer": check_channel_layer, "broker": check_broker}


def checks_to_run() -> dict:
    """``CHECKS``, and ``smtp`` when there is a receiver to check (``smtp_target``)."""
    checks = dict(CHECKS)
    try:
        target = smtp_target()
    except ValueError:  # READYZ_SMTP is not host:port
        checks["smtp"] = _misconfigured
    else:
        if target is not None:
            checks["smtp"] = lambda: check_smtp(*target)
    return checks


def _misconfigured() -> None:
    raise ValueError("READYZ_SMTP must be host:port")


@never_cache
@require_GET
def readyz(request):
    results, failing = {}, []
    for name, check in checks_to_run().items():
        try:
            check()
        except Exception as exc:
            logger.warning("readiness check failed", extra={"check": name, "error": str(exc)})
            results[name] = f"error: {exc.__class__.__name__}"
            failing.append(name)
        else:
            results[name] = "ok"
    status = 503 if failing else 200
    return JsonResponse(
        {"status": "ok" if not failing else "unavailable", "failing": failing, "checks": results},
        status=status,
    )
