"""Local sockets for tests: a free port, and the SMTP receiver running in this process."""

import socket
from contextlib import contextmanager


def free_port() -> int:
    """A port nothing listens on now (another process may take it before the caller binds: callers retry)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_receiver_running(*, max_bytes: int):
    """The SMTP receiver (aiosmtpd, its thread) on a free port; its controller. Closes the handler thread's database
    connection when it stops."""
    from django.db import connections

    from inbox.ingest import smtp

    controller = smtp.build_controller(host="127.0.0.1", port=free_port(), max_bytes=max_bytes)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
        connections.close_all()
