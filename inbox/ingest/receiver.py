"""The SMTP receiver process: listen first, set Django up after, serve until SIGINT/SIGTERM.

Setting Django up imports every installed app (Twisted for daphne, Celery, the admin): seconds, and far more on a
loaded machine, during which a sender found no listener. So the socket is bound before that (``run``), with only
aiosmtpd imported, and the handler holds back only the steps that need the database (RCPT TO, DATA) until Django is
ready; a client connecting meanwhile gets its 220 greeting and EHLO/MAIL answers at once.

``python -m inbox.ingest.receiver --host H --port P`` starts it without Django set up (the fast path);
``manage.py smtp_receiver`` runs the same loop after ``manage.py`` has set Django up.
"""

import argparse
import concurrent.futures
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from .smtp import build_controller, default_max_bytes


def run(
    *,
    host: str,
    port: int,
    max_bytes: int | None = None,
    setup: Callable[[], None] | None = None,
    write: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Listen on ``host:port`` now; then run ``setup`` (Django's, when it is not done yet) and serve until ``stop``
    is set (SIGINT or SIGTERM in the main thread). A failed ``setup`` stops the receiver and raises."""
    stop = stop or threading.Event()
    max_bytes = max_bytes or default_max_bytes()
    django_ready: concurrent.futures.Future = concurrent.futures.Future()
    if setup is None:
        django_ready.set_result(None)
    controller = build_controller(host=host, port=port, max_bytes=max_bytes, django_ready=django_ready)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    controller.start()
    write(
        f"SMTP receiver listening on {host}:{port} (max {max_bytes} bytes) after "
        f"{time.monotonic() - started:.2f} s"
    )
    try:
        if setup is not None:
            try:
                setup()
            except BaseException as exc:
                django_ready.set_exception(exc)
                raise
            django_ready.set_result(None)
            write("SMTP receiver ready: Django set up")
        while not stop.wait(0.5):
            pass
    finally:
        controller.stop()
        write("SMTP receiver stopped")


def _setup_django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbox_project.settings")
    django.setup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m inbox.ingest.receiver", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default=os.environ.get("SMTP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SMTP_PORT") or 2525))
    parser.add_argument("--max-bytes", type=int, default=None)
    args = parser.parse_args(argv)
    run(
        host=args.host,
        port=args.port,
        max_bytes=args.max_bytes,
        setup=_setup_django,
        write=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    sys.exit(main())
