"""``manage.py smtp_receiver``: the inbound SMTP server (aiosmtpd), running until interrupted."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from inbox.ingest.smtp import DEFAULT_MAX_BYTES, build_controller


class Command(BaseCommand):
    help = "Receive inbound email over SMTP for the configured inbound addresses (runs until interrupted)."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop = threading.Event()

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=2525, help="Port to listen on (default 2525).")
        parser.add_argument(
            "--max-bytes",
            type=int,
            default=None,
            help="Largest message accepted, in bytes (default INBOUND_MAX_EMAIL_BYTES, 25 MB).",
        )

    def handle(self, *args, host, port, max_bytes, **options):
        max_bytes = max_bytes or int(getattr(settings, "INBOUND_MAX_EMAIL_BYTES", DEFAULT_MAX_BYTES))
        controller = build_controller(host=host, port=port, max_bytes=max_bytes)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop.set())
        controller.start()
        self.stdout.write(f"SMTP receiver listening on {host}:{port} (max {max_bytes} bytes)")
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            controller.stop()
            self.stdout.write("SMTP receiver stopped")
