"""The production web server: gunicorn supervising uvicorn worker processes on one port (Procfile ``web``).

Each worker is a whole ASGI process (HTTP and WebSockets, its own real-time hub); the processes share the Redis
channel layer, so a change made through one reaches tabs on every other. Tunables come from the environment:

- ``WEB_CONCURRENCY``: worker processes (default: two per core, at least two — a sync view holds its process's
  GIL while it renders, and a second process per core overlaps one request's database waits with another's work);
- ``HOST`` / ``PORT``: where to listen (default ``0.0.0.0:8000``);
- ``FORWARDED_ALLOW_IPS``: proxies whose ``X-Forwarded-*`` headers the server applies (the client address and
  scheme it hands Django); default: ``TRUSTED_PROXIES``, the application's own list — none unless configured.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 — a server binds
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, 2 * (os.cpu_count() or 1)))
worker_class = "inbox_project.serving.Worker"
# One list of proxies for the server and the application (inbox_project.proxies): a header believed by one layer and
# not the other would give two client addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or os.environ.get("TRUSTED_PROXIES", "")
# An open WebSocket is a request that never ends: a worker is restarted only when it stops answering its arbiter,
# and a stopping worker gives its tabs ten seconds (they reconnect to another worker and re-read what they show).
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG") else None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
proc_name = "care-inbox-web"
control_socket_disable = True  # gunicorn 27's runtime control socket: one fixed path per user, unused here
