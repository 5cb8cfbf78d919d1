"""Real-time benchmark (``make bench-realtime``; not a test): on PostgreSQL and Redis, like production.

1. Latency across two web processes: nurse A sends a reply through web process 1 (an HTTP POST, as the reply box
   does) — or the patient's SMS arrives through the Twilio webhook on process 1 —, and nurse B, in Chromium on web
   process 2 with that conversation open, sees the message appear. Measured from just before the POST to the
   moment a MutationObserver in B's page sees the message in the DOM (one clock: same machine). Sequential sends.
2. Idle WebSockets: 2,000 signed-in sockets, each subscribed as an Inbox page is, on one web process; the process's
   resident memory (RSS, /proc) before and after gives the memory per connection.

Figures go to the "Real time" section of ``tests/benchmarks/results.md`` (replaced on each run; the rest of the
file is kept). Environment: ``BENCH_DATABASE_BASE`` (default postgres://postgres@127.0.0.1:5432; the database
``carebench_realtime`` is recreated each run), ``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/14, flushed),
``BENCH_SAMPLES`` (default 200 per path), ``BENCH_SOCKETS`` (default 2000).
"""

import asyncio
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.services import procfile_web  # noqa: E402

RESULTS = Path(__file__).with_name("results.md")
BASE_URL = os.environ.get("BENCH_DATABASE_BASE", "postgres://postgres@127.0.0.1:5432")
DATABASE = "carebench_realtime"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "2000"))
TWILIO_TOKEN = "bench-twilio-token"
LINE, PATIENT_PHONE = "+15550100001", "+15550102030"
SECTION = "## Real time"


def database_url() -> str:
    return f"{BASE_URL}/{DATABASE}"


def web_env() -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": REDIS_URL,
        "DEBUG": "1",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_ACCOUNT_SID": "ACbench",
        "SMS_BACKEND": "inbox.delivery.ConsoleSmsBackend",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def prepare() -> None:
    """A fresh database with migrations, and an empty Redis database."""
    import psycopg
    import redis

    with psycopg.connect(f"{BASE_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"],
        env=web_env(),
        check=True,
        cwd=ROOT,
    )
    redis.Redis.from_url(REDIS_URL).flushdb()


def arrange() -> dict:
    """Two nurses on one patient's care team and the patient's SMS conversation (runs in this process)."""
    os.environ["DATABASE_URL"] = database_url()
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbox_project.settings")
    os.environ.setdefault("DEBUG", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from designer.models import MenuItem, Policy
    from inbox.models import Channel
    from tests.factories import (
        CareTeamMemberFactory,
        CommunicationFactory,
        ConfigVersionFactory,
        MessageFactory,
        PatientContactMethodFactory,
        PatientFactory,
        RoleFactory,
        SendingLineFactory,
        UserFactory,
    )

    version = ConfigVersionFactory()
    RoleFactory(
        version=version, key="care-nurse", name="Care Team Nurse",
        menu=[MenuItem.HOME, MenuItem.INBOX, MenuItem.PATIENTS], policies=[Policy.INBOX_CARE_TEAM],
    )  # fmt: skip
    patient = PatientFactory(first_name="Maria", last_name="Lopez")
    PatientContactMethodFactory(patient=patient, kind="phone", value=PATIENT_PHONE)
    line = SendingLineFactory(number=LINE, label="Main clinic")
    a = UserFactory(username="nurse-a", first_name="Nora", last_name="Nurse", role="care-nurse")
    b = UserFactory(username="nurse-b", first_name="Cara", last_name="Colleague", role="care-nurse")
    for user in (a, b):
        CareTeamMemberFactory(patient=patient, user=user)
    communication = CommunicationFactory(
        patient=patient, channel=Channel.SMS, sending_line=line, counterpart=PATIENT_PHONE
    )
    MessageFactory(
        communication=communication, body_text="Hello, is anyone there?", sender_address=PATIENT_PHONE
    )

    def session(user) -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return {
        "communication": communication.pk,
        "cookie_a": session(a),
        "cookie_b": session(b),
        "cookie_name": settings.SESSION_COOKIE_NAME,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_web(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # The Procfile's production command, one uvicorn worker per web process.
    command = [sys.executable, "-m", *procfile_web()]
    env = {**web_env(), "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"web process exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"web process at {url} not ready")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# --- 1. Latency ---------------------------------------------------------------------------------------------------

OBSERVER = """
() => {
  window.__seen = {};
  const messages = document.getElementById("messages");
  new MutationObserver(() => {
    const now = Date.now();
    for (const article of messages.querySelectorAll("article.message")) {
      const found = article.textContent.match(/bench-(\\w+-\\d+)/);
      if (found && !(found[1] in window.__seen)) window.__seen[found[1]] = now;
    }
  }).observe(messages, { childList: true, subtree: true });
}
"""


def twilio_signature(url: str, params: dict) -> str:
    from twilio.request_validator import RequestValidator

    return RequestValidator(TWILIO_TOKEN).compute_signature(url, params)


def measure_latency(data: dict, url_a: str, url_b: str) -> dict[str, list[float]]:
    import requests
    from playwright.sync_api import sync_playwright

    pk = data["communication"]
    sender = requests.Session()
    sender.cookies.set(data["cookie_name"], data["cookie_a"])
    sender.get(f"{url_a}/inbox/care-team/directed/?c={pk}").raise_for_status()
    csrf = sender.cookies["csrftoken"]
    results: dict[str, list[float]] = {"send": [], "sms": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        context = browser.new_context(base_url=url_b, viewport={"width": 1440, "height": 900})
        context.add_cookies([{"name": data["cookie_name"], "value": data["cookie_b"], "url": url_b}])
        page = context.new_page()
        page.goto(f"/inbox/care-team/directed/?c={pk}")
        page.wait_for_function("document.querySelector('[data-live]') !== null")
        page.wait_for_timeout(1000)  # subscribed
        page.evaluate(OBSERVER)

        def send(n: int) -> tuple[str, float]:
            key = f"send-{n}"
            started = time.time() * 1000
            response = sender.post(
                f"{url_a}/inbox/c/{pk}/reply/",
                data={"body": f"Reply bench-{key}", "close": "0"},
                headers={"X-CSRFToken": csrf, "HX-Request": "true"},
            )
            response.raise_for_status()
            return key, started

        def sms(n: int) -> tuple[str, float]:
            key = f"sms-{n}"
            hook = f"{url_a}/hooks/sms/twilio/"
            sid = "SM" + hashlib.sha256(key.encode()).hexdigest()[:32]
            params = {
                "MessageSid": sid,
                "From": PATIENT_PHONE,
                "To": LINE,
                "Body": f"Patient bench-{key}",
                "NumMedia": "0",
            }
            started = time.time() * 1000
            response = requests.post(
                hook, data=params, headers={"X-Twilio-Signature": twilio_signature(hook, params)}
            )
            response.raise_for_status()
            return key, started

        for path, action in (("send", send), ("sms", sms)):
            for n in range(SAMPLES + 5):
                key, started = action(n)
                page.wait_for_function(f"'{key}' in window.__seen", timeout=10_000)
                if n >= 5:  # the first few warm caches and connections
                    results[path].append(page.evaluate(f"window.__seen['{key}']") - started)
                time.sleep(0.03)
        browser.close()
    return results


# --- 2. Idle sockets ----------------------------------------------------------------------------------------------


async def open_idle_sockets(url: str, data: dict, count: int):
    import aiohttp

    ws_url = url.replace("http://", "ws://") + "/ws/portal/"
    headers = {"Cookie": f"{data['cookie_name']}={data['cookie_b']}", "Origin": url}
    subscribe = json.dumps(
        {
            "type": "subscribe",
            "rows": str(data["communication"]),
            "open": "",
            "last_message_id": "",
            "HEADERS": {"HX-Current-URL": f"{url}/inbox/care-team/directed/"},
        }
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    sockets = []

    async def one():
        ws = await session.ws_connect(ws_url, headers=headers, autoping=True, heartbeat=None)
        await ws.send_str(subscribe)
        sockets.append(ws)

    started = time.monotonic()
    for first in range(0, count, 100):
        await asyncio.gather(*(one() for _ in range(min(100, count - first))))
    return session, sockets, time.monotonic() - started


def measure_idle_sockets(process: subprocess.Popen, url: str, data: dict) -> dict:
    async def run():
        # Warm up: one socket through the whole path (imports, template caches), then settle.
        session, sockets, _ = await open_idle_sockets(url, data, 1)
        await asyncio.sleep(2)
        for ws in sockets:
            await ws.close()
        await session.close()
        await asyncio.sleep(2)
        before = rss_kib(process.pid)
        session, sockets, seconds = await open_idle_sockets(url, data, SOCKETS)
        await asyncio.sleep(10)  # every subscription handled, then idle
        after = rss_kib(process.pid)
        alive = sum(not ws.closed for ws in sockets)
        for ws in sockets:
            await ws.close()
        await session.close()
        return {"before": before, "after": after, "seconds": seconds, "alive": alive}

    return asyncio.run(run())


# --- Results --------------------------------------------------------------------------------------------------------


def write_results(latency: dict[str, list[float]], idle: dict) -> str:
    per_connection = (idle["after"] - idle["before"]) / SOCKETS
    rows = []
    for name, label in (
        ("send", "reply sent in A → message in B's DOM"),
        ("sms", "inbound SMS webhook → message in B's DOM"),
    ):
        samples = latency[name]
        rows.append(
            f"| {label} | {len(samples)} | {statistics.median(samples):.0f} | {percentile(samples, 95):.0f} | "
            f"{percentile(samples, 99):.0f} | {max(samples):.0f} |"
        )
    section = "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores), "
            f"Python {platform.python_version()}, PostgreSQL, Redis channel layer, two web processes (gunicorn, one uvicorn worker each), "
            "headless Chromium (`make bench-realtime`, `tests/benchmarks/bench_realtime.py`).",
            "",
            "Latency from the POST on web process 1 to the message appearing in the open conversation of a browser",
            "on web process 2 (milliseconds; target p95 ≤ 250 ms):",
            "",
            "| path | samples | p50 | p95 | p99 | max |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"{SOCKETS:,} idle WebSockets on one web process (signed in, each subscribed as an Inbox page is; target "
            "< 100 KB per connection):",
            "",
            "| RSS before | RSS after | per connection | open after 10 s idle | time to open all |",
            "| --- | --- | --- | --- | --- |",
            f"| {idle['before'] / 1024:.1f} MiB | {idle['after'] / 1024:.1f} MiB | {per_connection:.1f} KiB | "
            f"{idle['alive']:,} / {SOCKETS:,} | {idle['seconds']:.1f} s |",
            "",
        ]
    )
    existing = RESULTS.read_text() if RESULTS.exists() else ""
    if SECTION in existing:
        before, _, rest = existing.partition(SECTION)
        following = rest.find("\n## ")
        existing = (
            before.rstrip("\n")
            + ("\n\n" if before.strip() else "")
            + (rest[following + 1 :] if following != -1 else "")
        )
    text = (existing.rstrip("\n") + "\n\n" if existing.strip() else "") + section
    RESULTS.write_text(text)
    return section


def main() -> None:
    print("== preparing PostgreSQL database and Redis", flush=True)
    prepare()
    data = arrange()
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    web1, url1 = start_web(logs / "bench-realtime-web1.log")
    web2, url2 = start_web(logs / "bench-realtime-web2.log")
    try:
        print(f"== latency: {SAMPLES} sends and {SAMPLES} inbound SMS, A on {url1}, B on {url2}", flush=True)
        latency = measure_latency(data, url1, url2)
        print(f"== {SOCKETS:,} idle sockets on {url2}", flush=True)
        idle = measure_idle_sockets(web2, url2, data)
    finally:
        for process in (web1, web2):
            process.terminate()
        for process in (web1, web2):
            process.wait(timeout=10)
    print(write_results(latency, idle))


if __name__ == "__main__":
    main()
