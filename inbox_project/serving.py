"""The uvicorn worker gunicorn runs (``inbox_project/gunicorn_conf.py``): uvloop and httptools for HTTP, the
``websockets`` library (its sans-I/O protocol) for WebSockets, and no ASGI lifespan (Channels' router has none to offer)."""

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "ws": "websockets-sansio", "lifespan": "off"}
