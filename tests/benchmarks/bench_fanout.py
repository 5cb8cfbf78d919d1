"""Real-time fan-out benchmark (``make bench-fanout``; not a test): how fast a care organisation's open Inbox tabs
see inbound SMS while many tabs are open and messages keep arriving.

Everything runs on a private PostgreSQL and Redis (``tests/benchmarks/services.py``), DEBUG off: ``seed_demo`` at
10,000 communications (2,000 patients; vacuumed and analysed), two web processes (the production command: gunicorn with one uvicorn worker each) and one Celery worker
(prefork, concurrency 2) as the Procfile runs them (no beat: the webhook queues the filing itself).

Tabs: N signed-in WebSockets to ``/ws/portal/``, spread evenly over the two web processes, each subscribed as an
Inbox page is (the page address and the ids of the first 50 rows the folder page shows that user, read over HTTP):
half as ``lead`` on All Patients → Directed, half as ``nurse`` on Care Team → Directed, each sending the page's
heartbeat every 10 s. All sockets live in one asyncio loop. Subscribing N tabs is timed from starting to open them
(all at once) until every tab has had the pong that answers a heartbeat sent right after its subscription (the
consumer handles a socket's frames in order); one tab alone is timed the same way (median of 5 per user).

Inbound: signed Twilio SMS posted at R per second for D seconds, alternating between the two web processes (one
keep-alive ``http.client`` connection per process, each in a thread), from patients on the nurse's care team whose
number names only them and who already have an SMS conversation on the sending line used (drawn at random each
run, each patient used once before any is used again), so every message belongs in both folders. Each body starts
with a unique token; the latency of a (message, tab) pair is from just before the POST to the tab's first frame
containing that token (one monotonic clock, one machine). A pair not delivered 15 s after the last POST is lost.
Then the run waits for the worker to drain and the tabs to go quiet; web and worker CPU (user + system of each
process and its children, from ``/proc``) is counted from the first POST to that point.

Runs: a baseline of 2 tabs (one lead, one nurse) × 1/s, then every N × R; the tabs are reconnected fresh for each N.
Environment: ``FANOUT_TABS`` (10,50,150), ``FANOUT_RATES`` (1,5,15), ``FANOUT_SECONDS`` (30), ``BENCH_APP_DIR`` (the
checkout the app processes run from, default this repository: a ``git worktree`` of an older commit gives the
"before" figure, written to its own section). Figures go to the "Real-time fan-out" section of
``tests/benchmarks/results.md``. Exits 1 when a pair was lost in a run at 5 messages/s or less.
"""

import asyncio
import json
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import services

TABS = [int(n) for n in os.environ.get("FANOUT_TABS", "10,50,150").split(",") if n.strip()]
RATES = [float(r) for r in os.environ.get("FANOUT_RATES", "1,5,15").split(",") if r.strip()]
SECONDS = float(os.environ.get("FANOUT_SECONDS", "30"))
BASELINE = (2, 1.0)
COMMUNICATIONS, PATIENTS = 10_000, 2_000  # as bench_inbox.py seeds 10,000 communications
ROWS = 50  # rows a folder page shows
WITHIN_S, GRACE_S = 10.0, 15.0
HEARTBEAT_S = 10.0  # LIVE_HEARTBEAT_SECONDS
SUBSCRIBE_ONE_SAMPLES = 5
FOLDERS = {"lead": "/inbox/all-patients/directed/", "nurse": "/inbox/care-team/directed/"}
HOOK = "/hooks/sms/twilio/"
PONG = "<!-- pong -->"
HEARTBEAT = json.dumps({"type": "heartbeat"})
TOKEN = re.compile(r"fan-[a-z0-9]+-\d+(?=:)")
TARGETS = {"p95 at 5/s": 2.5, "p95 at 15/s": 10.0, "subscribe": 10.0}


# --- Setup ---------------------------------------------------------------------------------------------------------


def app_sha() -> str:
    found = subprocess.run(
        ["git", "-C", str(services.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return found.stdout.strip() or "unknown"


def prepare(env: dict, pg_url: str) -> None:
    import psycopg

    services.manage(env, "migrate", "--noinput", "-v", "0")
    services.manage(env, "collectstatic", "--noinput", "-v", "0")  # DEBUG off: pages need the manifest
    services.manage(
        env, "seed_demo", "--patients", str(PATIENTS), "--communications", str(COMMUNICATIONS), "--seed", "1",
        "--no-logins",
    )  # fmt: skip
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


SESSIONS = """
import json
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
out = {"cookie_name": settings.SESSION_COOKIE_NAME}
for name in ("lead", "nurse"):
    client = Client()
    client.force_login(get_user_model().objects.get(username=name))
    out[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
print("SESSIONS " + json.dumps(out))
"""


def sessions(env: dict) -> dict:
    """Signed-in sessions for ``lead`` and ``nurse`` (force_login, as bench_realtime.py does), made by the app."""
    done = subprocess.run(
        [services.PYTHON, str(services.ROOT / "manage.py"), "shell", "-c", SESSIONS],
        env=env, cwd=services.ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(line for line in done.stdout.splitlines() if line.startswith("SESSIONS "))
    data = json.loads(line.removeprefix("SESSIONS "))
    return {"name": data["cookie_name"], "lead": data["lead"], "nurse": data["nurse"]}


def cookie_header(cookies: dict, user: str) -> str:
    return f"{cookies['name']}={cookies[user]}"


def folder_rows(base: str, cookie: str, path: str) -> list[int]:
    """The ids of the first rows of the folder page as the user sees it (``#inbox-rows``)."""
    request = urllib.request.Request(base + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=60) as response:
        page = response.read().decode()
    start = page.find('id="inbox-rows"')
    if start == -1:
        raise SystemExit(f"no #inbox-rows in {path}: not signed in? ({page[:300]!r})")
    listing = page[start : page.find("</ul>", start)]
    found = re.findall(r'data-communication-id="(\d+)"', listing) or re.findall(r'id="row-(\d+)"', listing)
    return list(dict.fromkeys(int(pk) for pk in found))[:ROWS]


SENDERS = """
SELECT DISTINCT ON (m.patient_id) m.patient_id, m.value
FROM careportal_patientcontactmethod m
JOIN careportal_careteammember t ON t.patient_id = m.patient_id
JOIN adminportal_user u ON u.id = t.user_id AND u.username = 'nurse'
WHERE m.kind = 'phone'
  AND NOT EXISTS (SELECT 1 FROM careportal_patientcontactmethod o
                  WHERE o.kind = 'phone' AND o.value = m.value AND o.patient_id <> m.patient_id)
  AND NOT EXISTS (SELECT 1 FROM careportal_contact c WHERE c.phone = m.value)
  AND EXISTS (SELECT 1 FROM inbox_communication c
              WHERE c.patient_id = m.patient_id AND c.channel = 'sms' AND c.sending_line_id = %s
                AND c.contact_id IS NULL AND NOT c.is_unrecognized)
ORDER BY m.patient_id, m.value
"""


def senders(pg_url: str) -> tuple[str, list[tuple[int, str]]]:
    """The shared sending line with the most eligible senders, and those senders (patient id, number): on the
    nurse's care team, a number no other patient or contact has (recognised as that patient), and an SMS
    conversation with the patient on that line already, so the message joins a row both folders list."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        lines = conn.execute(
            "SELECT id, number FROM inbox_sendingline WHERE is_active AND owner_id IS NULL ORDER BY id"
        ).fetchall()
        best = max(
            ((number, conn.execute(SENDERS, [pk]).fetchall()) for pk, number in lines),
            key=lambda x: len(x[1]),
        )
    if not best[1]:
        raise SystemExit("no patient on the nurse's care team has an SMS conversation on a shared line")
    return best


def dataset(pg_url: str) -> dict:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return {
            "patients": conn.execute("SELECT count(*) FROM careportal_patient").fetchone()[0],
            "communications": conn.execute("SELECT count(*) FROM inbox_communication").fetchone()[0],
            "messages": conn.execute("SELECT count(*) FROM inbox_message").fetchone()[0],
        }


def pending_raw(pg_url: str) -> tuple[int, int]:
    """Raw inbound items not filed yet, and items whose filing failed (kept with their error)."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE error = ''), count(*) FILTER (WHERE error <> '') "
            "FROM inbox_rawinbound WHERE processed_at IS NULL"
        ).fetchone()


def cpu_seconds(leaders: list[int]) -> float:
    """User + system CPU seconds (with reaped children) of these app processes' sessions."""
    stats = services.process_cpu()
    return sum(services.group_cpu(stats, leader) for leader in leaders)


# --- Tabs ----------------------------------------------------------------------------------------------------------


@dataclass
class Tab:
    index: int
    user: str
    base: str
    rows: list[int]
    ws: object = None
    seen: dict = field(default_factory=dict)  # token → monotonic time of the first frame with it
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list = field(default_factory=list)
    frames: int = 0
    close_code: int | None = None

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed


def subscription(tab: Tab) -> str:
    """What the Inbox page's hidden ws-send element sends (tests/careportal/realtime_support.py)."""
    return json.dumps(
        {
            "type": "subscribe",
            "rows": ",".join(str(pk) for pk in tab.rows),
            "open": "",
            "last_message_id": "",
            "HEADERS": {
                "HX-Request": "true",
                "HX-Current-URL": tab.base + FOLDERS[tab.user],
                "HX-Trigger": "live-subscribe",
            },
        }
    )


class Browser:
    """Every tab's socket in one aiohttp session and one event loop."""

    def __init__(self, cookies: dict):
        import aiohttp

        self.aiohttp = aiohttp
        self.cookies = cookies
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        self.last_frame = time.monotonic()  # the last frame other than a pong, any tab

    async def open(self, tab: Tab, *, heartbeats: bool = True, timeout: float = 600) -> Tab:
        """Connect, subscribe, and return once the subscription has been handled (its pong came back)."""
        await self.connect(tab)
        await self.subscribe(tab, heartbeats=heartbeats, timeout=timeout)
        return tab

    async def connect(self, tab: Tab) -> Tab:
        """Open the tab's socket (signed in), as the page does on load."""
        headers = {"Cookie": cookie_header(self.cookies, tab.user), "Origin": tab.base}
        tab.ws = await self.session.ws_connect(
            tab.base.replace("http://", "ws://", 1) + "/ws/portal/", headers=headers, autoping=True,
            heartbeat=None, max_msg_size=0, timeout=self.aiohttp.ClientWSTimeout(ws_close=5),
        )  # fmt: skip
        tab.tasks.append(asyncio.ensure_future(self._read(tab)))
        return tab

    async def subscribe(self, tab: Tab, *, heartbeats: bool = True, timeout: float = 600) -> Tab:
        """Say what the tab shows; return once the server has handled it (the heartbeat after it is answered)."""
        await tab.ws.send_str(subscription(tab))
        await tab.ws.send_str(HEARTBEAT)
        await asyncio.wait_for(tab.pong.wait(), timeout)
        if heartbeats:
            tab.tasks.append(asyncio.ensure_future(self._heartbeats(tab)))
        return tab

    async def _read(self, tab: Tab) -> None:
        text = self.aiohttp.WSMsgType.TEXT
        async for message in tab.ws:
            now = time.monotonic()
            if message.type != text:
                continue
            if message.data == PONG:
                tab.pong.set()
                continue
            self.last_frame = now
            tab.frames += 1
            if "fan-" in message.data:
                for token in TOKEN.findall(message.data):
                    tab.seen.setdefault(token, now)
        tab.close_code = tab.ws.close_code

    async def _heartbeats(self, tab: Tab) -> None:
        """The page's heartbeat every 10 s, at a random phase per tab."""
        await asyncio.sleep(random.uniform(0, HEARTBEAT_S))
        while not tab.ws.closed:
            await tab.ws.send_str(HEARTBEAT)
            await asyncio.sleep(HEARTBEAT_S)

    async def close(self, tabs: list[Tab]) -> None:
        for tab in tabs:
            if tab.ws is not None:
                await tab.ws.close()
        for tab in tabs:
            for task in tab.tasks:
                task.cancel()
            await asyncio.gather(*tab.tasks, return_exceptions=True)

    async def quiet(self, seconds: float = 2.0, limit: float = 180.0) -> None:
        """Until no tab has had a frame (other than a pong) for ``seconds``, at most ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() - self.last_frame < seconds and time.monotonic() < deadline:
            await asyncio.sleep(0.25)


def tab_plan(count: int, bases: list[str], rows: dict) -> list[Tab]:
    """Half lead, half nurse, alternating; each user's tabs alternate between the web processes too."""
    tabs = []
    for i in range(count):
        user = "lead" if i % 2 == 0 else "nurse"
        tabs.append(Tab(i, user, bases[(i + i // 2) % len(bases)], rows[user]))
    return tabs


SETTLE_S = 1.0


async def open_all(browser: Browser, tabs: list[Tab]) -> tuple[float, float]:
    """Open every tab's socket at once, then subscribe them all at once: (seconds to connect, to subscribe)."""
    started = time.monotonic()
    await asyncio.gather(*(browser.connect(tab) for tab in tabs))
    connected = time.monotonic() - started
    await asyncio.sleep(
        SETTLE_S
    )  # the servers finish setting the sockets up (session check, hub) before the clock
    started = time.monotonic()
    await asyncio.gather(*(browser.subscribe(tab) for tab in tabs))
    return connected, time.monotonic() - started


async def subscribe_one(browser: Browser, bases: list[str], rows: dict) -> dict[str, list[float]]:
    """One tab alone, opened, subscribed (timed) and closed, again and again (after a warm-up on each process)."""
    samples: dict[str, list[float]] = {"lead": [], "nurse": []}
    for n in range(1 + SUBSCRIBE_ONE_SAMPLES):
        for base in bases if n == 0 else [bases[n % len(bases)]]:
            for user in samples:
                tab = Tab(0, user, base, rows[user])
                await browser.connect(tab)
                started = time.monotonic()
                await browser.subscribe(tab, heartbeats=False)
                elapsed = time.monotonic() - started
                await browser.close([tab])
                if n:
                    samples[user].append(elapsed)
                await asyncio.sleep(0.3)
    return samples


# --- Inbound -------------------------------------------------------------------------------------------------------


@dataclass
class Posted:
    sent: dict = field(default_factory=dict)  # token → monotonic time just before its first POST attempt
    acks_ms: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    retries: int = 0


def prepare_posts(run: str, count: int, bases: list[str], line: str, patients: list[tuple[int, str]]) -> list:
    """Signed and encoded before the clock starts: (n, web index, token, body, headers) per message."""
    order = random.sample(patients, len(patients))
    posts = []
    for n in range(count):
        web = n % len(bases)
        token = f"fan-{run}-{n}"
        _patient, number = order[n % len(order)]
        params = services.sms_params(
            sid="SM" + uuid.uuid4().hex,
            sender=number,
            to=line,
            body=f"{token}: is my appointment still on Tuesday?",
        )
        signature = services.twilio_signature(bases[web] + HOOK, params)
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        posts.append((n, web, token, urlencode(params).encode(), headers))
    return posts


def post_steadily(
    base: str, posts: list, start: float, rate: float, posted: Posted, lock: threading.Lock
) -> None:
    """Message n at start + n / rate, on one keep-alive connection; a failed POST is retried (its clock kept)."""
    address = urlsplit(base)
    connection = HTTPConnection(address.hostname, address.port, timeout=30)
    for n, _web, token, body, headers in posts:
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        before = time.monotonic()
        for attempt in range(5):
            try:
                connection.request("POST", HOOK, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                connection.close()
                connection = HTTPConnection(address.hostname, address.port, timeout=30)
                status = 0
            if status == 200:
                with lock:
                    posted.sent[token] = before
                    posted.acks_ms.append((time.monotonic() - before) * 1000)
                    posted.retries += attempt
                break
            time.sleep(0.2)
        else:
            with lock:
                posted.failed.append(token)
    connection.close()


# --- One run -------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    tabs: int
    rate: float
    subscribe_s: float
    connect_s: float = 0.0
    messages: int = 0
    latencies_ms: list = field(default_factory=list)  # one per (message, tab) pair; inf = lost
    late: int = 0
    web_cpu: float = 0.0
    worker_cpu: float = 0.0
    post_failures: int = 0
    ingest_failures: int = 0
    closed_tabs: int = 0
    post_seconds: float = 0.0
    ack_p95_ms: float = 0.0
    client_cpu: float = 0.0
    lost_by_user: dict = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return len(self.latencies_ms)

    @property
    def lost(self) -> int:
        return sum(math.isinf(v) for v in self.latencies_ms)

    def p(self, q: float) -> float:
        return services.percentile(self.latencies_ms, q) if self.latencies_ms else math.inf


async def run_one(
    browser: Browser, tabs: list[Tab], rate: float, *, run: str, ctx: dict, seconds: float = SECONDS
) -> Run:
    bases, pg_url = ctx["bases"], ctx["pg_url"]
    count = max(1, round(rate * seconds))
    posts = prepare_posts(run, count, bases, ctx["line"], ctx["senders"])
    posted, lock = Posted(), threading.Lock()
    cpu_web, cpu_worker, cpu_client = (
        cpu_seconds(ctx["web_pids"]),
        cpu_seconds(ctx["worker_pids"]),
        time.process_time(),
    )
    start = time.monotonic() + 0.2
    await asyncio.gather(
        *(
            asyncio.to_thread(post_steadily, base, [p for p in posts if p[1] == w], start, rate, posted, lock)
            for w, base in enumerate(bases)
        )
    )
    post_seconds = time.monotonic() - start
    last_post = max(posted.sent.values(), default=time.monotonic())
    deadline = last_post + GRACE_S
    tokens = list(posted.sent)
    while time.monotonic() < deadline:
        if all(token in tab.seen for tab in tabs for token in tokens):
            break
        await asyncio.sleep(0.25)
    # Drained: every item filed (or failed); then the tabs have had all they will get.
    drain_deadline, failed = time.monotonic() + 600, 0
    while time.monotonic() < drain_deadline:
        waiting, failed = await asyncio.to_thread(pending_raw, pg_url)
        if not waiting:
            break
        await asyncio.sleep(0.5)
    await browser.quiet()
    result = Run(len(tabs), rate, ctx["subscribe_s"], connect_s=ctx["connect_s"], messages=count)
    result.web_cpu = cpu_seconds(ctx["web_pids"]) - cpu_web
    result.worker_cpu = cpu_seconds(ctx["worker_pids"]) - cpu_worker
    result.client_cpu = time.process_time() - cpu_client
    result.post_failures, result.ingest_failures = len(posted.failed), failed - ctx.get("failed_before", 0)
    ctx["failed_before"] = failed
    result.closed_tabs = sum(tab.closed for tab in tabs)
    result.post_seconds = post_seconds
    result.ack_p95_ms = services.percentile(posted.acks_ms, 95) if posted.acks_ms else math.inf
    for token in [*tokens, *posted.failed]:
        before = posted.sent.get(token)
        for tab in tabs:
            at = tab.seen.get(token)
            if before is None or at is None or at > deadline:
                result.latencies_ms.append(math.inf)
                result.lost_by_user[tab.user] = result.lost_by_user.get(tab.user, 0) + 1
                result.late += at is not None and before is not None
            else:
                result.latencies_ms.append((at - before) * 1000)
    return result


def ms(value: float) -> str:
    return "lost" if math.isinf(value) else f"{value:,.0f}"


def progress(r: Run) -> str:
    within = sum(v <= WITHIN_S * 1000 for v in r.latencies_ms)
    return (
        f"   {r.tabs} tabs × {r.rate:g}/s: {r.messages} messages in {r.post_seconds:.1f} s, {r.pairs} pairs, "
        f"p50 {ms(r.p(50))} p95 {ms(r.p(95))} p99 {ms(r.p(99))} max {ms(r.p(100))} ms, "
        f"{100 * within / max(1, r.pairs):.1f}% ≤ 10 s, lost {r.lost} {r.lost_by_user} (late {r.late}), "
        f"web CPU {r.web_cpu:.1f} s, worker CPU {r.worker_cpu:.1f} s, benchmark client CPU {r.client_cpu:.1f} s, "
        f"webhook ack p95 {ms(r.ack_p95_ms)} ms, POST failures {r.post_failures}, "
        f"ingest failures {r.ingest_failures}, tabs closed by the server {r.closed_tabs}"
    )


async def measure(ctx: dict) -> dict:
    browser = Browser(ctx["cookies"])
    runs: list[Run] = []
    rows = ctx["rows"]
    try:
        print("== one tab alone: subscribe time", flush=True)
        one = await subscribe_one(browser, ctx["bases"], rows)
        print(
            "   " + ", ".join(f"{u} median {statistics.median(s) * 1000:.0f} ms" for u, s in one.items()),
            flush=True,
        )
        print("== warm-up: 2 tabs, a few SMS through each web process (not counted)", flush=True)
        tabs = tab_plan(2, ctx["bases"], rows)
        await open_all(browser, tabs)
        ctx["subscribe_s"] = ctx["connect_s"] = 0.0
        await run_one(browser, tabs, 2.0, run=f"{ctx['tag']}w", ctx=ctx, seconds=3)
        await browser.close(tabs)
        plan = [(BASELINE[0], [BASELINE[1]])]
        plan += [(n, [r for r in RATES if (n, r) != BASELINE]) for n in TABS]
        for number, rates in plan:
            if not rates:
                continue
            rows = ctx["read_rows"]()
            tabs = tab_plan(number, ctx["bases"], rows)
            print(f"== {number} tabs: opening and subscribing (load: {services.load()})", flush=True)
            ctx["connect_s"], ctx["subscribe_s"] = await open_all(browser, tabs)
            print(
                f"   connected in {ctx['connect_s']:.2f} s, subscribed in {ctx['subscribe_s']:.2f} s",
                flush=True,
            )
            await browser.quiet()
            for rate in rates:
                run = f"{ctx['tag']}{len(runs)}"
                print(
                    f"== {number} tabs × {rate:g} SMS/s for {SECONDS:g} s (load: {services.load()})",
                    flush=True,
                )
                runs.append(await run_one(browser, tabs, rate, run=run, ctx=ctx))
                print(progress(runs[-1]), flush=True)
            await browser.close(tabs)
            await asyncio.sleep(2)  # the consumers leave their groups
    finally:
        await browser.session.close()
    return {"one": one, "runs": runs}


# --- Report --------------------------------------------------------------------------------------------------------


def log_problems(logs: Path) -> dict[str, int]:
    """Lines in each process's log that look like errors (tracebacks, ERROR records)."""
    found = {}
    for log in sorted(logs.glob("*.log")):
        text = log.read_text(errors="replace")
        found[log.stem] = len(re.findall(r"Traceback|\bERROR\b|\"levelname\": \"ERROR\"", text))
    return found


def report(results: dict, ctx: dict, started: float) -> str:
    runs: list[Run] = results["runs"]
    by = {(r.tabs, r.rate): r for r in runs}
    one = results["one"]
    one_s = statistics.mean(statistics.median(s) for s in one.values())
    rows = []
    for r in runs:
        within = sum(v <= WITHIN_S * 1000 for v in r.latencies_ms)
        rows.append(
            f"| {r.tabs} | {r.rate:g} | {r.messages} | {r.pairs:,} | {ms(r.p(50))} | {ms(r.p(95))} | {ms(r.p(99))} | "
            f"{ms(r.p(100))} | {100 * within / max(1, r.pairs):.1f} | {r.lost:,} | {r.web_cpu:.1f} | "
            f"{r.worker_cpu:.1f} |"
        )
    base = by.get(BASELINE)
    most = max(TABS) if TABS else BASELINE[0]
    biggest = next((r for r in runs if r.tabs == most), None)

    def ratio(tabs: int, rate: float, target: float) -> str:
        run = by.get((tabs, rate))
        if run is None or base is None:
            return f"p95({tabs} tabs × {rate:g}/s) / p95(2 tabs × 1/s): not run (target ≤ {target:g} at 150 tabs)"
        if math.isinf(base.p(95)):
            shown = "n/a (the baseline lost rows)"
        else:
            value = run.p(95) / base.p(95)
            shown = "∞ (rows lost)" if math.isinf(value) else f"{value:.2f}"
        return (
            f"p95({tabs} tabs × {rate:g}/s) / p95(2 tabs × 1/s) = {ms(run.p(95))} / {ms(base.p(95))} ms = "
            f"**{shown}** (target ≤ {target:g} at 150 tabs)"
        )

    subscribe = biggest.subscribe_s if biggest else math.nan
    notes = []
    for r in runs:
        extra = []
        if r.lost:
            extra.append(
                "rows lost by user: " + ", ".join(f"{u} {n:,}" for u, n in sorted(r.lost_by_user.items()))
            )
        if r.late:
            extra.append(f"{r.late:,} pairs arrived after the 15 s cut-off")
        if r.closed_tabs:
            extra.append(f"{r.closed_tabs} sockets closed by the server")
        if r.post_failures:
            extra.append(f"{r.post_failures} POSTs never acknowledged")
        if r.ingest_failures:
            extra.append(f"{r.ingest_failures} SMS failed ingestion")
        if extra:
            notes.append(f"- {r.tabs} tabs × {r.rate:g}/s: " + ", ".join(extra) + ".")
    acks = ", ".join(f"{r.tabs}×{r.rate:g}: {ms(r.ack_p95_ms)}" for r in runs)
    problems = ", ".join(f"{name} {count}" for name, count in ctx["problems"].items())
    data = ctx["dataset"]
    return "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`make bench-fanout`, `tests/benchmarks/bench_fanout.py`)"
            f" on {platform.node()} ({os.cpu_count()} cores, shared with other test runs), app at `{ctx['sha']}`"
            f"{'' if services.ROOT == services.REPO else f' (`BENCH_APP_DIR={services.ROOT}`)'}; whole run "
            f"{(time.monotonic() - started) / 60:.1f} min. Load before: `{ctx['load_before']}`; after: "
            f"`{services.load()}`.",
            "",
            f"Private PostgreSQL and Redis, two web processes (gunicorn, one uvicorn worker each), one Celery worker (prefork, concurrency 2), "
            f"DEBUG off. Data: `seed_demo` at {data['communications']:,} communications ({data['messages']:,} "
            f"messages, {data['patients']:,} patients), vacuumed. Tabs: half `lead` on All Patients → Directed, half "
            f"`nurse` on Care Team → Directed, each subscribed with its folder's first {ROWS} rows, spread over both "
            f"web processes. Inbound: signed Twilio SMS at a steady rate for {SECONDS:g} s, alternating between the "
            f"web processes, from {len(ctx['senders'])} patients on the nurse's care team (random order each run) "
            f"to {ctx['line']}: every message belongs in both folders. Latency: just before the POST → the tab's "
            "first frame with the message's token, milliseconds, over every (message, tab) pair; a pair not "
            "delivered 15 s after the last POST is lost (and counts as ∞ in the percentiles). CPU: from the first "
            "POST until the worker drained and the tabs went quiet.",
            "",
            "| tabs | inbound/s | messages | pairs | p50 | p95 | p99 | max | delivered ≤ 10 s (%) | rows lost | "
            "web CPU s | worker CPU s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Opening {most} sockets at once (WebSocket handshake, session and sign-in): "
            f"{biggest.connect_s if biggest else math.nan:.2f} s, before they subscribe.",
            "",
            f"Subscribe (each open socket says what its tab shows; until every one is handled): {most} tabs at once in "
            f"{subscribe:.2f} s; one tab alone {one_s * 1000:.0f} ms (median of "
            f"{SUBSCRIBE_ONE_SAMPLES}: lead {statistics.median(one['lead']) * 1000:.0f} ms, nurse "
            f"{statistics.median(one['nurse']) * 1000:.0f} ms; their mean); subscribe({most}) / subscribe(1) = "
            f"**{subscribe / one_s:.1f}** (target ≤ {TARGETS['subscribe']:g} at 150 tabs).",
            "",
            f"- {ratio(most, 5.0, TARGETS['p95 at 5/s'])}",
            f"- {ratio(most, 15.0, TARGETS['p95 at 15/s'])}",
            "",
            f"Webhook acknowledgement p95 (ms) per run: {acks}. The benchmark's own CPU (s; tabs and posting) per "
            f"run: {', '.join(f'{r.tabs}×{r.rate:g}: {r.client_cpu:.1f}' for r in runs)}. Error lines in the app's "
            f"logs: {problems}.",
            *(["", *notes] if notes else []),
        ]
    )


def main() -> int:
    started = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="careinbox-bench-fanout-"))
    sha = app_sha()
    print(f"== real-time fan-out benchmark: app {services.ROOT} at {sha}; logs in {logs}", flush=True)
    pg, redis = services.PrivatePostgres(), services.PrivateRedis()
    processes: list[services.AppProcess] = []
    try:
        pg.start()
        redis.start()
        env = services.app_env(pg, redis, VAR_DIR=str(logs / "var"))
        print(f"== migrate, seed {COMMUNICATIONS:,} communications, vacuum", flush=True)
        prepare(env, pg.url)
        webs = [services.web(env, logs / f"web{n}.log") for n in (1, 2)]
        processes += [process for process, _ in webs]
        bases = [base for _, base in webs]
        processes.append(services.worker(env, logs / "worker.log"))
        cookies = sessions(env)

        def read_rows() -> dict[str, list[int]]:
            return {
                user: folder_rows(bases[0], cookie_header(cookies, user), path)
                for user, path in FOLDERS.items()
            }

        line, patients = senders(pg.url)
        ctx = {
            "bases": bases,
            "pg_url": pg.url,
            "cookies": cookies,
            "rows": read_rows(),
            "read_rows": read_rows,
            "line": line,
            "senders": patients,
            "web_pids": [p.process.pid for p in processes[:2]],
            "worker_pids": [processes[2].process.pid],
            "tag": uuid.uuid4().hex[:6],
            "sha": sha,
            "dataset": dataset(pg.url),
        }
        print(
            f"   {len(patients)} senders on {line}; rows: lead {len(ctx['rows']['lead'])}, "
            f"nurse {len(ctx['rows']['nurse'])}",
            flush=True,
        )
        time.sleep(2)
        ctx["load_before"] = services.load()
        results = asyncio.run(measure(ctx))
    finally:
        for process in processes:
            process.stop()
        redis.stop()
        pg.stop()
    ctx["problems"] = log_problems(logs)
    text = report(results, ctx, started)
    print(text)
    title = "Real-time fan-out"
    if services.ROOT != services.REPO:
        title += f" (before: {sha})"
    services.write_section(title, text)
    lost = [r for r in results["runs"] if r.rate <= 5 and r.lost]
    for r in lost:
        print(f"FAILED: {r.lost} rows lost at {r.tabs} tabs × {r.rate:g}/s", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
