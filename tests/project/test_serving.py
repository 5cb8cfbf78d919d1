"""The production web command: gunicorn supervising uvicorn workers on one port, from the Procfile, the Makefile and
the README alike; and the per-process pieces each request shares (the Redis connection pool)."""

import os
import runpy
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from inbox_project.cache import SharedPoolRedisCache
from tests.benchmarks.services import procfile_web
from tests.network import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "inbox_project" / "gunicorn_conf.py"


def config_with(monkeypatch, **env) -> dict:
    for name in ("WEB_CONCURRENCY", "HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONFIG))


def test_procfile_web_is_gunicorn_with_the_project_config():
    assert procfile_web() == [
        "gunicorn",
        "--config",
        "python:inbox_project.gunicorn_conf",
        "inbox_project.asgi:application",
    ]


def test_the_config_runs_two_workers_per_core_by_default(monkeypatch):
    config = config_with(monkeypatch)
    assert config["workers"] == max(2, 2 * os.cpu_count())
    assert config["bind"] == "0.0.0.0:8000"
    assert config["worker_class"] == "inbox_project.serving.Worker"


def test_the_config_takes_workers_and_address_from_the_environment(monkeypatch):
    config = config_with(monkeypatch, WEB_CONCURRENCY="5", HOST="127.0.0.1", PORT="8101")
    assert config["workers"] == 5
    assert config["bind"] == "127.0.0.1:8101"


def test_the_worker_uses_uvloop_httptools_and_websockets_without_lifespan():
    from inbox_project.serving import Worker

    assert Worker.CONFIG_KWARGS == {
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "lifespan": "off",
    }


def test_redis_cache_objects_share_one_connection_pool():
    """Django makes a cache object per request context under ASGI; with the stock backend each made its own pool
    (and connection). Building a pool does not connect, so no Redis is needed here."""
    params = {"BACKEND": "inbox_project.cache.SharedPoolRedisCache"}
    first = SharedPoolRedisCache("redis://127.0.0.1:6379/9", params)
    second = SharedPoolRedisCache("redis://127.0.0.1:6379/9", params)
    other = SharedPoolRedisCache("redis://127.0.0.1:6379/10", params)
    pool = first._cache._get_connection_pool(write=True)
    assert second._cache._get_connection_pool(write=True) is pool
    assert other._cache._get_connection_pool(write=True) is not pool
    assert first._cache.get_client(write=True) is second._cache.get_client()
    assert first._cache.get_client().connection_pool is pool


def test_the_production_command_serves_with_several_worker_processes(tmp_path):
    """The Procfile's web command starts, answers on one port from more than one worker process, and stops."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("REDIS_URL", None)
    log = tmp_path / "web.log"
    command = [sys.executable, "-m", *procfile_web()]
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        answered = False
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    answered = response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        assert answered, log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while log.read_text().count("Booting worker") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert log.read_text().count("Booting worker") == 2, log.read_text()[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0, log.read_text()[-3000:]


def test_http_requests_run_the_whole_sync_chain_in_one_call():
    """The HTTP handler's middleware chain is sync end to end (no hop back to the event loop for the view)."""
    import asyncio

    from inbox_project.handlers import SyncChainASGIHandler

    handler = SyncChainASGIHandler()
    assert not asyncio.iscoroutinefunction(handler._middleware_chain)


@pytest.mark.django_db
def test_the_asgi_application_answers_http_through_the_sync_chain():
    import asyncio
    import json

    from asgiref.testing import ApplicationCommunicator

    from inbox_project.asgi import application

    async def get(path: str) -> tuple[int, bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(timeout=10)
        body = await communicator.receive_output(timeout=10)
        await communicator.wait(timeout=10)
        return start["status"], body["body"]

    status, body = asyncio.run(get("/healthz"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _ = asyncio.run(get("/no-such-page/"))
    assert status == 404
