"""The embedded default's SMTP receiver inside the web process (``make run``): mail received there is filed by the
web process itself and appears live in open Inboxes, because its real-time hints reach the in-memory channel layer.

Explicit: only when ``INBOX_EMBEDDED_SMTP`` is on (the Makefile's ``run`` target sets it), never in tests or other
management commands, and not with ``REDIS_URL`` (several processes: the Procfile's ``smtp`` process receives mail
and its hints go through Redis). Started once per process, at import of the ASGI application, on the event loop of
daphne (which has no ASGI lifespan to hook): that loop is where the in-memory layer's consumers wait, and a hint
sent from aiosmtpd's own thread and loop would not wake them.
"""

import asyncio
import logging
import os
import sys

from django.conf import settings

logger = logging.getLogger(__name__)
ENV = "INBOX_EMBEDDED_SMTP"
_state: dict = {"scheduled": False, "task": None, "server": None, "address": None}


def is_requested() -> bool:
    return os.environ.get(ENV, "").strip().lower() in {"1", "true", "yes", "on"}


async def start_smtp(*, host: str, port: int) -> asyncio.AbstractServer | None:
    """Listen for SMTP on the running loop; on a taken port, warn and return None (the web keeps serving)."""
    from inbox.ingest.smtp import serve

    try:
        server = await serve(host=host, port=port)
    except OSError as error:
        logger.warning(
            f"Inbound SMTP NOT started: cannot listen on {host}:{port} ({error.strerror or error}). The web "
            "server keeps running; set SMTP_PORT to a free port to receive email.",
            extra={"smtp_host": host, "smtp_port": port},
        )
        return None
    logger.info(f"Inbound SMTP listening on {host}:{port}", extra={"smtp_host": host, "smtp_port": port})
    _state["server"] = server
    return server


def embedded_address() -> tuple[str, int] | None:
    """Where the receiver embedded in this process listens (it was scheduled here), for readiness; else None."""
    if not _state["scheduled"]:
        return None
    return _state.get("address")


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop daphne will run (its Twisted reactor is installed on asyncio before the app is imported)."""
    reactor = sys.modules.get("twisted.internet.reactor")
    return getattr(reactor, "_asyncioEventloop", None)


def schedule_smtp() -> bool:
    """Called once at import of ``inbox_project.asgi``: start the SMTP receiver on the server's loop when asked to.

    True when it was scheduled (at most once per process).
    """
    if not is_requested() or _state["scheduled"]:
        return False
    if settings.REDIS_URL:
        logger.info(f"{ENV} is ignored with REDIS_URL: run the Procfile's smtp process to receive email")
        return False
    loop = _server_loop()
    if loop is None:
        logger.warning(f"{ENV} needs daphne (make run); inbound SMTP is not started in this process")
        return False
    _state["scheduled"] = True
    host, port = settings.SMTP_HOST, settings.SMTP_PORT
    _state["address"] = (host, port)

    def begin() -> None:
        _state["task"] = loop.create_task(start_smtp(host=host, port=port))

    loop.call_soon_threadsafe(begin)  # runs as soon as the server's loop runs
    return True
