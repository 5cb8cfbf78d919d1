"""``manage.py smtp_receiver``: the inbound SMTP server (aiosmtpd), running until interrupted.

``manage.py`` has set Django up before this runs; the listening loop is ``inbox.ingest.receiver.run``, whose
``python -m inbox.ingest.receiver`` form listens before Django is set up (the faster start).
"""

import threading

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Receive inbound email over SMTP for the configured inbound addresses (runs until interrupted)."
    # The system checks import every URLconf and view (seconds on a loaded machine) and none is about receiving
    # mail; ``manage.py check`` and the web process run them.
    requires_system_checks = []

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
        from inbox.ingest.receiver import run

        run(host=host, port=port, max_bytes=max_bytes, write=self.stdout.write, stop=self.stop)
