"""The inbound SMTP receiver's handler (aiosmtpd): accepts mail only for active inbound addresses, enforces the
size limit, and answers ``250`` only after the raw message is stored (``451`` when it cannot be).

Importing this module costs aiosmtpd and asyncio only: Django (models, the ORM) is imported on first use, so the
receiver process (``inbox.ingest.receiver``) can listen before Django is set up. Envelope values are kept exactly as
received (a NUL in MAIL FROM, RCPT TO or EHLO included); the recipient is matched on its ``safe_text`` form.
"""

import asyncio
import collections
import concurrent.futures
import logging
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from asgiref.sync import sync_to_async

logger = logging.getLogger(__name__)

ACCEPTED = "250 Message accepted"
UNKNOWN_MAILBOX = "550 5.1.1 mailbox unavailable"
TOO_BIG = "552 5.3.4 message too big"
TRY_LATER = "451 4.3.0 temporary failure, try again later"
DEFAULT_MAX_BYTES = 25 * 1024 * 1024


def default_max_bytes() -> int:
    """``INBOUND_MAX_EMAIL_BYTES``: from the settings once Django is configured, else from the environment variable
    the settings read (the receiver process listens before Django is set up)."""
    from django.conf import settings

    if settings.configured:
        return int(getattr(settings, "INBOUND_MAX_EMAIL_BYTES", DEFAULT_MAX_BYTES))
    return int(os.environ.get("INBOUND_MAX_EMAIL_BYTES") or DEFAULT_MAX_BYTES)


def _is_inbound_address(address: str) -> bool:
    from django.db import close_old_connections

    from inbox.models import InboundAddress

    from .recognize import normalize_email

    close_old_connections()  # a long-running process: drop connections the database has closed
    return InboundAddress.objects.filter(address=normalize_email(address), is_active=True).exists()


def __getattr__(name: str):
    # ``store_raw`` and ``email_provider_id`` are read on first use (they need Django), through the module, so a
    # test can still replace them here.
    if name in {"store_raw", "email_provider_id"}:
        from . import raw

        return getattr(raw, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _store(content: bytes, envelope: dict):
    from django.db import close_old_connections

    from inbox.models import RawInbound

    this = sys.modules[__name__]
    close_old_connections()
    row, _ = this.store_raw(
        source=RawInbound.Source.SMTP,
        provider_id=this.email_provider_id(content),
        raw=content,
        envelope=envelope,
    )
    return row


class InboundHandler:
    """aiosmtpd handler. Its hooks are async; the ORM is sync, so every database call goes through
    ``sync_to_async`` (one worker thread, the thread-sensitive default).

    ``django_ready`` (the receiver process) is a future completed once Django is set up: the hooks that use the
    database wait for it, so a client connecting during start-up is answered at once and only waits at RCPT TO.
    """

    def __init__(self, *, max_bytes: int, django_ready: concurrent.futures.Future | None = None):
        self.max_bytes = max_bytes
        self.django_ready = django_ready

    async def _wait_for_django(self) -> None:
        if self.django_ready is not None and not self.django_ready.done():
            await asyncio.wrap_future(self.django_ready)
        elif self.django_ready is not None:
            self.django_ready.result()  # raises when the set-up failed (the process is stopping)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # Advertise our limit rather than the transport's (which is set a little higher so we can answer 552
        # with our own message).
        return [f"250-SIZE {self.max_bytes}" if r.startswith("250-SIZE") else r for r in responses]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        for option in mail_options:
            name, _, value = option.partition("=")
            if name.upper() == "SIZE" and value.isdigit() and int(value) > self.max_bytes:
                return TOO_BIG
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        try:
            await self._wait_for_django()
            accepted = await sync_to_async(_is_inbound_address)(address)
        except Exception:
            logger.exception("could not check an SMTP recipient", extra={"rcpt": address})
            return TRY_LATER
        if not accepted:
            return UNKNOWN_MAILBOX
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or b""
        if len(content) > self.max_bytes:
            return TOO_BIG
        peer = session.peer
        meta = {
            "mail_from": envelope.mail_from or "",
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": list(peer) if isinstance(peer, tuple) else str(peer or ""),
            "helo": session.host_name or "",
            # The command arguments as sent (the parsed address drops RFC 5322 comments and quoting).
            "mail_from_line": getattr(envelope, "mail_from_line", ""),
            "rcpt_to_lines": list(getattr(envelope, "rcpt_to_lines", [])),
        }
        try:
            await self._wait_for_django()
            row = await sync_to_async(_store)(content, meta)
        except Exception:
            logger.exception("could not store an inbound email; asked the sender to retry")
            return TRY_LATER
        logger.info("email received", extra={"raw_id": row.pk, "bytes": len(content)})
        return ACCEPTED


class TolerantSMTP(SMTP):
    # RFC 5321 caps lines at 1000 octets, but real mailers send longer HTML lines; refusing them (500) would turn
    # a patient's email into a bounce. The message size limit still bounds memory.
    line_length_limit = 256 * 1024
    # Command lines too: RFC 5321 says 512 octets, but a long (internationalised, or odd) address is kept rather
    # than bounced; beyond this the sender gets aiosmtpd's "500 Command line too long" at once.
    command_size_limit = 4096  # before EHLO

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # After EHLO aiosmtpd reads per-command limits from a dict shared by the class (defaulting to the base
        # class's 512); this instance gets its own, defaulting to ours.
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)

    # The envelope keeps what the sender wrote, not only aiosmtpd's reading of it (which drops a "(comment)").
    async def smtp_MAIL(self, arg):
        await super().smtp_MAIL(arg)
        if self.envelope is not None and self.envelope.mail_from is not None:
            self.envelope.mail_from_line = arg or ""

    async def smtp_RCPT(self, arg):
        accepted = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        await super().smtp_RCPT(arg)
        if self.envelope is not None and len(self.envelope.rcpt_tos) > accepted:
            self.envelope.rcpt_to_lines = [*getattr(self.envelope, "rcpt_to_lines", []), arg or ""]


class InboundController(Controller):
    def factory(self):
        return TolerantSMTP(self.handler, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False):
        # Close the database connection of the thread that ran the handler's ORM calls before the loop goes.
        from django.apps import apps
        from django.db import connections

        if self._thread is not None and self.loop.is_running() and apps.ready:
            closing = asyncio.run_coroutine_threadsafe(sync_to_async(connections.close_all)(), self.loop)
            try:
                closing.result(timeout=5)
            except Exception:
                logger.warning("could not close the SMTP receiver's database connection", exc_info=True)
        super().stop(no_assert=no_assert)


def smtp_options(max_bytes: int) -> dict:
    """The SMTP protocol's options, the same for the receiver's own thread (``build_controller``) and the web
    process's event loop (``serve``)."""
    return {
        # The transport's own ceiling (it stops buffering beyond it); ours is checked in handle_MAIL/DATA.
        "data_size_limit": max_bytes + max(max_bytes // 10, 64 * 1024),
        "enable_SMTPUTF8": True,
        "hostname": "care-inbox",
    }


def build_controller(
    *,
    host: str,
    port: int,
    max_bytes: int | None = None,
    django_ready: concurrent.futures.Future | None = None,
) -> Controller:
    """An aiosmtpd controller (its own thread and event loop) serving ``InboundHandler``."""
    max_bytes = max_bytes or default_max_bytes()
    options = smtp_options(max_bytes)
    return InboundController(
        InboundHandler(max_bytes=max_bytes, django_ready=django_ready),
        hostname=host,
        port=port,
        data_size_limit=options["data_size_limit"],
        enable_SMTPUTF8=options["enable_SMTPUTF8"],
        server_hostname=options["hostname"],
    )


async def serve(*, host: str, port: int, max_bytes: int | None = None) -> asyncio.AbstractServer:
    """Serve ``InboundHandler`` on the running event loop (the embedded web process's: ``inbox_project.embedded``);
    ``OSError`` when the address is taken."""
    max_bytes = max_bytes or default_max_bytes()
    loop = asyncio.get_running_loop()
    handler = InboundHandler(max_bytes=max_bytes)
    options = smtp_options(max_bytes)
    return await loop.create_server(lambda: TolerantSMTP(handler, loop=loop, **options), host=host, port=port)
