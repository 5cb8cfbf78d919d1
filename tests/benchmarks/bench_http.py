"""Pages over HTTP (``make bench-http``; not a test): the Care Portal's pages and partials as a browser gets them
from the production web server, against a bare ``GET /healthz`` on the same server.

Server: the Procfile's ``web`` — ``gunicorn --config python:inbox_project.gunicorn_conf inbox_project.asgi:application``
(uvicorn workers; ``WEB_CONCURRENCY`` is the config's default, two per core, unless ``BENCH_WEB_CONCURRENCY`` sets
it) on a free loopback port, DEBUG off, on the Inbox benchmark's database ``carebench_<size>`` (PostgreSQL at
127.0.0.1:5432, seeded once by ``seed_demo`` and reused: ``prepare`` of ``bench_inbox.py``) and a private Redis
(``services.PrivateRedis``: port 6399, or a free port when that one is taken; one Redis database per size). Static
files are collected into a private ``VAR_DIR`` (the manifest production pages need). Plain http on the loopback as
behind a TLS-terminating proxy: ``SECURE_SSL_REDIRECT``, ``SESSION_COOKIE_SECURE`` and ``CSRF_COOKIE_SECURE`` are off
(the cookies' flag, not the work per request), everything else is production's.

Clients: one keep-alive ``requests.Session`` per user, signed in through the sign-in form (``/accounts/login/``, CSRF
token from the form, demo password) as ``nurse`` and ``lead``. A wrong password is never sent, so django-axes never
counts a failure; the idle timeout (15 minutes by default) is never reached, as the two sessions work throughout and
the extra clients of the concurrency run sign in just before it.

Cases: each after one warm-up request, ``BENCH_REPEAT`` (40) requests, each right after a bare ``GET /healthz`` on the
same connection (so on the same worker); every response must be 200 (no redirect followed) with the body the page
has. Ratios are against the bare figures of all those interleaved requests of the same size. Search terms, and the
conversation to open, are read from the database at run time (``random.Random(BENCH_SEED)``, default 1, so reruns
pick the same). Concurrency: 1, 4 and 16 clients (``BENCH_HTTP_CLIENTS``), each a thread with its own signed-in
keep-alive session (alternately nurse and lead; the single client is the nurse for half the time and the lead for
the other half), each cycling through its user's folder pages for ``BENCH_HTTP_SECONDS`` (10).

Sizes: ``BENCH_SIZES`` (default 10000,1000000). Figures go to the "Pages over HTTP" section of
``tests/benchmarks/results.md``. Exits 1, leaving results.md as it was, when any request failed.
"""

import contextlib
import itertools
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks import services
from tests.benchmarks.bench_inbox import REPEAT, SIZES, database_url, prepare

SECTION = "Pages over HTTP"
SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", "10"))
LEVELS = [int(n) for n in os.environ.get("BENCH_HTTP_CLIENTS", "1,4,16").split(",") if n.strip()]
SEED = int(os.environ.get("BENCH_SEED", "1"))
WEB_CONCURRENCY = os.environ.get("BENCH_WEB_CONCURRENCY", "")
PASSWORD = os.environ.get("DEMO_PASSWORD", "care-inbox-demo")
SERVER_COMMAND = "gunicorn " + " ".join(services.GUNICORN_ARGS)
NOTHING = "zzqxv"
RARE_WORDS_SAMPLE = 20_000  # messages sampled to find the most common word

# Targets from issue 13, as multiples of the bare request's figure.
TARGETS = {
    "folder": (3.0, 3.0),  # (p50, p95); None = no target on that figure
    "conversation page": (None, 6.0),
    "search": (None, 10.0),
}
CONCURRENCY_SPEEDUP, CONCURRENCY_P95, SIZE_RATIO = 1.8, 10.0, 1.5

NURSE_FOLDERS = ["my/assigned", "my/primary-contact", "my/unrecognized", "my/sent",
                 "care-team/directed", "care-team/unrecognized"]  # fmt: skip
LEAD_FOLDERS = ["all-patients/directed", "all-patients/unrecognized"]
HOME = {
    "nurse": "/inbox/my/assigned/",
    "lead": "/inbox/all-patients/directed/",
}  # the page a partial is asked from
SEARCH_FOLDER = {"lead": "all-patients/directed", "nurse": "care-team/directed"}
ROW = re.compile(r'<li id="row-\d+"')


# --- What to ask for -----------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    user: str
    path: str
    group: str  # "bare", "folder", "conversation page", "search" or "other" (no target)
    headers: dict = field(default_factory=dict)
    markers: tuple[str, ...] = ()
    messages: int | None = None  # a conversation: how many messages it must show
    samples: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    size: int = 0  # bytes of the last response
    rows: int = 0  # list rows in the last response
    error: str = ""


def htmx(base: str, current: str, target: str, **extra) -> dict:
    """The headers htmx sends: the request is a partial, from the page at ``current``."""
    return {"HX-Request": "true", "HX-Current-URL": base + current, "HX-Target": target, **extra}


def folder_cases(base: str) -> list[Case]:
    cases = []
    page = ('id="folder-nav"', 'id="inbox-rows"', "</html>")
    partial = ('id="inbox-list"', 'id="inbox-rows"', 'hx-swap-oob="true"')
    for user, folders in (
        ("nurse", NURSE_FOLDERS),
        ("lead", [*LEAD_FOLDERS, "all-patients/directed?unassigned"]),
    ):
        for folder in folders:
            folder, _, unassigned = folder.partition("?")
            path = f"/inbox/{folder}/" + ("?unassigned=1" if unassigned else "")
            label = folder + (" unassigned only" if unassigned else "")
            cases.append(Case(f"page {label} ({user})", user, path, "folder", markers=page))
            headers = htmx(base, HOME[user], "inbox-list")
            cases.append(Case(f"partial {label} ({user})", user, path, "folder", headers, partial))
    for user in ("nurse", "lead"):
        # The navigation asks for its counts as it loads: a request no user event caused (static/js/idle.js).
        headers = htmx(base, HOME[user], "folder-nav", **{"X-Idle-Background": "true"})
        path = HOME[user] + "counts/"
        cases.append(
            Case(
                f"counts partial ({user})", user, path, "folder", headers, ('id="folder-nav"', "data-counts=")
            )
        )
    return cases


def conversation_cases(base: str, pk: int, messages: int) -> list[Case]:
    current = f"/inbox/{SEARCH_FOLDER['lead']}/"
    conversation = ("data-conversation", f'data-communication-id="{pk}"')
    return [
        Case(f"conversation, {messages} messages: partial (lead)", "lead", f"/inbox/c/{pk}/", "folder",
             htmx(base, current, "conversation-pane"), conversation, messages),
        Case(f"conversation, {messages} messages: full page (lead)", "lead", f"{current}?c={pk}",
             "conversation page", markers=(*conversation, 'id="inbox-rows"', "</html>"), messages=messages),
    ]  # fmt: skip


def search_cases(base: str, terms: list[tuple[str, str, str]]) -> list[Case]:
    cases = []
    for user in ("lead", "nurse"):
        folder = SEARCH_FOLDER[user]
        for kind, term, _ in terms:
            path = f"/inbox/{folder}/rows/?{urlencode({'q': term})}"
            headers = htmx(base, f"/inbox/{folder}/", "inbox-rows")
            markers = ('id="folder-nav"', 'id="inbox-incoming"')
            cases.append(Case(f"search {kind} ({user}, {folder})", user, path, "search", headers, markers))
    return cases


def choose_terms(url: str) -> list[tuple[str, str, str]]:
    """(kind, term, where it came from) for every kind of search, read from the data: the same on every rerun."""
    import psycopg

    rng = random.Random(SEED)
    with psycopg.connect(url) as conn:

        def one(sql: str, params=()):
            return conn.execute(sql, params).fetchone()

        def random_row(table: str, columns: str, where: str) -> tuple:
            """A row picked at random (seeded) by id: the first one at or after a random id in range."""
            low, high = one(f"SELECT min(id), max(id) FROM {table} WHERE {where}")
            for _ in range(50):
                start = rng.randint(low, high)
                row = one(
                    f"SELECT {columns} FROM {table} WHERE {where} AND id >= %s ORDER BY id LIMIT 1", [start]
                )
                if row:
                    return row
            raise SystemExit(f"no row in {table} where {where}")

        def two_words() -> tuple[str, str]:
            for _ in range(50):
                pk, body = random_row(
                    "inbox_message", "id, body_text", "direction = 'in' AND NOT is_internal_note"
                )
                tokens = body.split()
                pairs = [
                    f"{a} {b.rstrip('.,!?;:')}"
                    for a, b in itertools.pairwise(tokens)
                    if re.fullmatch(r"[a-z]{3,}", a) and re.fullmatch(r"[a-z]{3,}[.,!?;:]?", b)
                ]
                if pairs:
                    return rng.choice(pairs), f"two consecutive words of inbound message {pk}"
            raise SystemExit("no inbound message with two ordinary words")

        words, words_note = two_words()
        first, first_n, first_of = one(
            "SELECT first_name, count(*), sum(count(*)) OVER () FROM careportal_patient "
            "GROUP BY first_name ORDER BY 2 DESC, 1 LIMIT 1"
        )
        last, last_n, _ = one(
            "SELECT last_name, count(*), sum(count(*)) OVER () FROM careportal_patient "
            "GROUP BY last_name ORDER BY 2 DESC, 1 LIMIT 1"
        )
        pk, surname = random_row("careportal_patient", "id, last_name", "length(last_name) >= 5")
        part = surname[: rng.choice((3, 4))]
        # Addresses and numbers of real conversations with patients (a patient's own contact method).
        known = "AND EXISTS (SELECT 1 FROM careportal_patientcontactmethod m WHERE m.kind = '{}' AND m.value = counterpart)"
        emails = f"channel IN ('email', 'secure_email') AND NOT is_unrecognized {known.format('email')}"
        phones = f"channel = 'sms' AND NOT is_unrecognized {known.format('phone')}"
        pk_email, address = random_row("inbox_communication", "id, counterpart", emails)
        pk_local, local = random_row("inbox_communication", "id, counterpart", emails)
        local = local.split("@")[0]
        prefix = local[: min(len(local), 6)]
        pk_last4, phone_a = random_row("inbox_communication", "id, counterpart", phones)
        pk_phone, phone_b = random_row("inbox_communication", "id, counterpart", phones)
        (messages,) = one("SELECT reltuples FROM pg_class WHERE relname = 'inbox_message'")
        percent = min(100.0, 100.0 * RARE_WORDS_SAMPLE / max(messages, 1))
        sample = f"SELECT body_tsv FROM inbox_message TABLESAMPLE SYSTEM ({percent:.4f}) REPEATABLE ({SEED})"
        common, in_docs = one(
            "SELECT word, ndoc FROM ts_stat(%s) WHERE word ~ '^[a-z]{3,}$' ORDER BY ndoc DESC, word LIMIT 1",
            [sample],
        )
        (sampled,) = one(f"SELECT count(*) FROM ({sample}) AS s")
    national = f"({phone_b[2:5]}) {phone_b[5:8]}-{phone_b[8:]}" if phone_b.startswith("+1") else phone_b
    return [
        ("two words", words, words_note),
        ("first name", first, f"most frequent patient first name ({first_n:,} of {int(first_of):,} patients)"),
        ("last name", last, f"most frequent patient last name ({last_n:,} patients)"),
        ("part of a name", part, f"start of patient {pk}'s last name {surname!r}"),
        ("email domain", "@" + address.split("@")[1], f"domain of communication {pk_email}'s address {address}"),
        ("part of an address", prefix, f"start of communication {pk_local}'s address, local part {local!r}"),
        ("last 4 digits of a phone", phone_a[-4:], f"communication {pk_last4}'s number {phone_a}"),
        ("full phone number", national, f"communication {pk_phone}'s number {phone_b}, as typed"),
        ("nothing matches", NOTHING, "a word in no message or name"),
        ("a word in most messages", common,
         f"most common word of message bodies: in {in_docs:,} of {sampled:,} sampled messages"),
    ]  # fmt: skip


def conversation_candidates(url: str) -> list[tuple[int, int]]:
    """(communication, messages) of linked communications: those with at least 50 messages, fewest first, else the
    longest ones — the conversation the lead opens is the first of these the lead may see."""
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT m.communication_id, count(*) AS n FROM inbox_message m "
            "JOIN inbox_communication c ON c.id = m.communication_id WHERE NOT c.is_unrecognized "
            "GROUP BY m.communication_id "
            "ORDER BY count(*) >= 50 DESC, CASE WHEN count(*) >= 50 THEN count(*) END, count(*) DESC, 1 LIMIT 20"
        ).fetchall()


# --- Clients -------------------------------------------------------------------------------------------------------


class Client:
    """One signed-in user on one keep-alive connection."""

    def __init__(self, base: str, user: str):
        import requests

        self.base, self.user = base, user
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies for the loopback

    def sign_in(self) -> "Client":
        form = self.session.get(f"{self.base}/accounts/login/", allow_redirects=False, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        if form.status_code != 200 or not token:
            raise SystemExit(f"sign-in form: HTTP {form.status_code}")
        data = {"csrfmiddlewaretoken": token[1], "username": self.user, "password": PASSWORD, "next": ""}
        done = self.session.post(f"{self.base}/accounts/login/", data=data, allow_redirects=False, timeout=60)
        if done.status_code == 429:
            raise SystemExit(f"{self.user} is locked out by django-axes (failed sign-ins from 127.0.0.1)")
        if done.status_code != 302:
            raise SystemExit(
                f"sign-in as {self.user}: HTTP {done.status_code}, expected a redirect (wrong password?)"
            )
        return self

    def get(self, path: str, headers: dict | None = None):
        """(milliseconds, response), or a ``NoAnswer`` for the response when the request got none."""
        import requests

        started = time.perf_counter()
        try:
            response = self.session.get(self.base + path, headers=headers, allow_redirects=False, timeout=120)
        except requests.RequestException as error:
            response = NoAnswer(f"{error.__class__.__name__}: {error}")
        return (time.perf_counter() - started) * 1000, response


@dataclass
class NoAnswer:
    error: str


def problem(response, markers=(), messages: int | None = None, minimum: int = 1000) -> str:
    """Why ``response`` is not the page asked for, or ``""``."""
    if isinstance(response, NoAnswer):
        return f"no answer: {response.error}"
    if response.status_code != 200:
        where = response.headers.get("Location") or response.headers.get("HX-Redirect") or ""
        return f"HTTP {response.status_code}{' → ' + where if where else ''}"
    if response.headers.get("HX-Redirect"):
        return f"HX-Redirect → {response.headers['HX-Redirect']}"
    body = response.text
    if len(body) < minimum:
        return f"{len(body)} bytes"
    missing = [marker for marker in markers if marker not in body]
    if missing:
        return f"no {missing[0]!r} in the body"
    shown = body.count('id="message-')
    if messages is not None and shown != messages:
        return f"{shown} messages shown, {messages} expected"
    return ""


BARE_MARKERS = ('"status": "ok"',)


def measure(case: Case, client: Client) -> None:
    """One warm-up, then REPEAT × (bare request, the case's request) on the client's connection."""
    for path, markers, minimum in (("/healthz", BARE_MARKERS, 10), (case.path, case.markers, 1000)):
        _, response = client.get(path, case.headers if path == case.path else None)
        case.error = problem(response, markers, case.messages if path == case.path else None, minimum)
        if case.error:
            case.error = f"warm-up {path}: {case.error}"
            return
    for _ in range(REPEAT):
        ms, response = client.get("/healthz")
        if error := problem(response, BARE_MARKERS, minimum=10):
            case.error = f"/healthz: {error}"
            return
        case.bare.append(ms)
        ms, response = client.get(case.path, case.headers)
        if error := problem(response, case.markers, case.messages):
            case.error = error
            return
        case.samples.append(ms)
    case.size = len(response.content)
    case.rows = len(ROW.findall(response.text))


@dataclass
class Level:
    clients: int
    requests: int = 0
    seconds: float = 0.0
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def folder_pages(user: str) -> list[str]:
    if user == "nurse":
        return [f"/inbox/{folder}/" for folder in NURSE_FOLDERS]
    return [*(f"/inbox/{folder}/" for folder in LEAD_FOLDERS), "/inbox/all-patients/directed/?unassigned=1"]


def run_level(clients: list[Client], seconds: float, level: Level) -> None:
    """Every client cycles through its user's folder pages (full pages) for ``seconds``, all at once."""
    barrier = threading.Barrier(len(clients))
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def loop(index: int, client: Client) -> None:
        pages = folder_pages(client.user)
        samples, errors, done = [], [], 0
        for path in pages:  # warm-up: the connection is open and its worker has served these pages
            _, response = client.get(path)
            if error := problem(response, ('id="inbox-rows"',)):
                errors.append(f"{client.user} {path} (warm-up): {error}")
                break
        try:
            barrier.wait(timeout=300)
        except threading.BrokenBarrierError:
            errors.append("a client did not get ready")
        started = time.perf_counter()
        deadline = started + seconds
        turn = index
        while not errors and time.perf_counter() < deadline:
            path = pages[turn % len(pages)]
            turn += 1
            ms, response = client.get(path)
            if error := problem(response, ('id="inbox-rows"',)):
                errors.append(f"{client.user} {path}: {error}")
                break
            samples.append(ms)
            done += 1
        with lock:
            spans.append((started, time.perf_counter()))
            level.samples += samples
            level.requests += done
            level.errors += errors

    threads = [threading.Thread(target=loop, args=(i, c), daemon=True) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.seconds += max(end for _, end in spans) - min(start for start, _ in spans)


def concurrency(pool: list[Client]) -> list[Level]:
    levels = []
    for count in LEVELS:
        level = Level(count)
        if count == 1:  # the same mix of pages as the others: half the time the nurse, half the lead
            run_level([pool[0]], SECONDS / 2, level)
            run_level([pool[1]], SECONDS / 2, level)
        else:
            run_level(pool[:count], SECONDS, level)
        print(
            f"   {count:>2} clients: {level.requests:,} pages in {level.seconds:.1f} s = {level.rate:.1f}/s, "
            f"p50 {p50(level.samples):.1f} ms, p95 {p95(level.samples):.1f} ms",
            flush=True,
        )
        levels.append(level)
    return levels


# --- One size ------------------------------------------------------------------------------------------------------


def p50(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def p95(samples: list[float]) -> float:
    return services.percentile(samples, 95) if samples else float("nan")


@dataclass
class Run:
    size: int
    workers: int
    cases: list[Case]
    levels: list[Level]
    terms: list[tuple[str, str, str]]
    conversation: tuple[int, int]
    load_before: str
    load_after: str
    server_error: str = ""

    @property
    def bare(self) -> list[float]:
        return [ms for case in self.cases for ms in case.bare]

    @property
    def failures(self) -> list[str]:
        found = [f"{case.name}: {case.error}" for case in self.cases if case.error]
        found += [f"{level.clients} clients: {error}" for level in self.levels for error in level.errors]
        return found + ([self.server_error] if self.server_error else [])


def run_size(size: int, redis: services.PrivateRedis, number: int, var_dir: Path, logs: Path) -> Run:
    print(f"== {size:,} communications: preparing database carebench_{size}", flush=True)
    prepare(size)
    url = database_url(size)
    terms = choose_terms(url)
    candidates = conversation_candidates(url)
    extra = {"VAR_DIR": str(var_dir), "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0"}
    if WEB_CONCURRENCY:
        extra["WEB_CONCURRENCY"] = WEB_CONCURRENCY
    env = services.app_env(
        SimpleNamespace(url=url), SimpleNamespace(url=f"redis://127.0.0.1:{redis.port}/{number}"), **extra
    )
    if not (var_dir / "static" / "staticfiles.json").exists():
        print("== collectstatic into a private VAR_DIR (DEBUG off: pages need the manifest)", flush=True)
        services.manage(env, "collectstatic", "--noinput", "-v", "0")
    load_before = services.load()
    web, base = services.gunicorn_web(env, logs / f"web-{size}.log")
    try:
        workers = web.extra["workers"]
        print(f"== {size:,}: {SERVER_COMMAND} at {base}, {workers} workers; load {load_before}", flush=True)
        nurse, lead = Client(base, "nurse").sign_in(), Client(base, "lead").sign_in()
        clients = {"nurse": nurse, "lead": lead}
        conversation = None
        for pk, count in candidates:
            _, response = lead.get(f"/inbox/c/{pk}/", htmx(base, HOME["lead"], "conversation-pane"))
            if response.status_code == 200:
                conversation = (pk, count)
                break
        if conversation is None:
            raise SystemExit("the lead may open none of the longest conversations")
        cases = [
            Case("bare GET /healthz", "nurse", "/healthz", "bare", markers=BARE_MARKERS),
            *folder_cases(base),
            *conversation_cases(base, *conversation),
            Case("patients list (lead)", "lead", "/patients/", "other", markers=('id="patient-search"', "patient-link")),
            *search_cases(base, terms),
        ]  # fmt: skip
        print(f"   search terms: {', '.join(repr(term) for _, term, _ in terms)}", flush=True)
        print(f"   conversation {conversation[0]} ({conversation[1]} messages)", flush=True)
        bare = cases[0]
        for case in cases[1:]:
            measure(case, clients[case.user])
            outcome = case.error or (
                f"p50 {p50(case.samples):6.1f}  p95 {p95(case.samples):6.1f} ms  (bare p50 {p50(case.bare):.1f})"
            )
            print(f"   {case.name:<62} {outcome}", flush=True)
        bare.samples = [
            ms for case in cases[1:] for ms in case.bare
        ]  # the baseline row: every interleaved request
        print(f"   {bare.name:<62} p50 {p50(bare.samples):6.1f}  p95 {p95(bare.samples):6.1f} ms", flush=True)
        pool = [nurse, lead]
        with ThreadPoolExecutor(4) as signing:  # signed in now, so no session nears the idle timeout unused
            pool += signing.map(
                lambda i: Client(base, ("nurse", "lead")[i % 2]).sign_in(), range(2, max(LEVELS, default=2))
            )
        print(f"== {size:,}: folder pages at {', '.join(map(str, LEVELS))} concurrent clients", flush=True)
        levels = concurrency(pool)
        code = web.process.poll()  # still serving: nothing stopped it under the benchmark's feet
        server_error = f"gunicorn exited during the run (code {code})" if code is not None else ""
    finally:
        with uninterrupted():
            web.stop()
    return Run(size, workers, cases, levels, terms, conversation, load_before, services.load(), server_error)


# --- Results -------------------------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def verdict(case: Case, bare: list[float]) -> tuple[str, str, str, str]:
    """(×bare p50, ×bare p95, target, met) of a case."""
    if case.group == "bare":
        return "1.0", "1.0", "", ""
    if case.error or not case.samples:
        return "", "", "", "✗ failed"
    r50, r95 = p50(case.samples) / p50(bare), p95(case.samples) / p95(bare)
    limits = TARGETS.get(case.group)
    if limits is None:
        return f"{r50:.1f}", f"{r95:.1f}", "—", ""
    parts, ok = [], True
    for name, ratio, limit in (("p50", r50, limits[0]), ("p95", r95, limits[1])):
        if limit is not None:
            parts.append(f"{name} ≤ {limit:g}×")
            ok = ok and ratio <= limit
    return f"{r50:.1f}", f"{r95:.1f}", ", ".join(parts), mark(ok)


def size_text(run: Run) -> list[str]:
    bare = run.bare
    lines = [
        f"### {run.size:,} communications",
        "",
        f"Load before: `{run.load_before}`; after: `{run.load_after}`. {run.workers} workers.",
        "",
        "| case | p50 ms | p95 ms | KB | rows | p50 / bare | p95 / bare | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in run.cases:
        r50, r95, target, met = verdict(case, bare)
        rows = str(case.rows) if case.group == "search" or 'id="inbox-rows"' in case.markers else ""
        size = f"{case.size / 1024:.1f}" if case.size else ""
        figures = f"{p50(case.samples):.1f} | {p95(case.samples):.1f}" if case.samples else " | "
        lines.append(f"| {case.name} | {figures} | {size} | {rows} | {r50} | {r95} | {target} | {met} |")
    lines += ["", f"Search terms, read from the data (BENCH_SEED={SEED}):", ""]
    lines += ["| kind | term | from |", "| --- | --- | --- |"]
    lines += [f"| {kind} | `{term}` | {note} |" for kind, term, note in run.terms]
    pk, count = run.conversation
    fifty = "" if count >= 50 else " (no conversation the lead sees has 50 messages: this is the longest)"
    lines += ["", f"Conversation: communication {pk}, {count} messages{fifty}.", ""]
    lines += [
        f"Folder pages (full pages, each client cycling through its user's folders) at concurrent clients, "
        f"{SECONDS:g} s each; bare p95 {p95(bare):.1f} ms:",
        "",
        "| clients | pages | pages/s | p50 ms | p95 ms | p95 / bare p95 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for level in run.levels:
        lines.append(
            f"| {level.clients} | {level.requests:,} | {level.rate:.1f} | {p50(level.samples):.1f} | "
            f"{p95(level.samples):.1f} | {p95(level.samples) / p95(bare):.1f} |"
        )
    by_count = {level.clients: level for level in run.levels}
    if 1 in by_count and 16 in by_count:
        one, many = by_count[1], by_count[16]
        speedup = many.rate / one.rate if one.rate else float("nan")
        ratio = p95(many.samples) / p95(bare)
        lines += [
            "",
            f"16 clients vs 1: **{speedup:.2f}×** the pages/s (target ≥ {CONCURRENCY_SPEEDUP:g}×) "
            f"{mark(speedup >= CONCURRENCY_SPEEDUP)}; p95 at 16 clients {ratio:.1f}× bare p95 (target ≤ "
            f"{CONCURRENCY_P95:g}×) {mark(ratio <= CONCURRENCY_P95)}.",
        ]
    if run.failures:
        more = len(run.failures) - 10
        lines += ["", "**Failed requests:**", "", *(f"- {failure}" for failure in run.failures[:10])]
        lines += [f"- … and {more} more"] if more > 0 else []
    return lines


def size_ratio_text(runs: list[Run]) -> list[str]:
    small, large = runs[0], runs[-1]
    lines = [
        f"### p95 at {large.size:,} / p95 at {small.size:,}",
        "",
        f"| case | {small.size:,} p95 ms | {large.size:,} p95 ms | ratio | target ≤ {SIZE_RATIO:g} |",
        "| --- | --- | --- | --- | --- |",
    ]
    # Cases are matched by their place in the run: conversation and search names carry run-time values.
    for a, b in zip(small.cases, large.cases, strict=False):
        ratio = p95(b.samples) / p95(a.samples) if a.samples and b.samples else float("nan")
        name = a.name if a.name == b.name else f"{a.name} / {b.name}"
        lines.append(
            f"| {name} | {p95(a.samples):.1f} | {p95(b.samples):.1f} | {ratio:.2f} | {mark(ratio <= SIZE_RATIO)} |"
        )
    return lines


def app_version() -> str:
    sha = subprocess.run(
        ["git", "-C", str(services.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(services.ROOT), "status", "--porcelain", "--", ".", ":!tests/benchmarks"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return f"{sha or 'unknown'}{' with uncommitted changes' if dirty else ''}"


def report(runs: list[Run], redis_port: int) -> str:
    workers = ", ".join(sorted({str(run.workers) for run in runs}))
    source = (
        "BENCH_WEB_CONCURRENCY" if WEB_CONCURRENCY else "the config's default: two per core, at least two"
    )
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`make bench-http`, `tests/benchmarks/bench_http.py`) on "
        f"{platform.node()} ({os.cpu_count()} cores shared with other work), Python {platform.python_version()}, "
        f"app at {app_version()}. Sizes: {', '.join(f'{run.size:,}' for run in runs)} communications "
        "(`carebench_<size>` of `make bench`).",
        "",
        f"Server: `{SERVER_COMMAND}` (the Procfile's `web`), WEB_CONCURRENCY={workers} ({source}) uvicorn workers, "
        f"DEBUG off, PostgreSQL at 127.0.0.1:5432, a private Redis on 127.0.0.1:{redis_port}; plain http on the "
        "loopback (SSL redirect and secure cookie flags off, as behind a TLS proxy).",
        "",
        f"Clients: one keep-alive `requests` session per user, signed in through the sign-in form. Each case: one "
        f"warm-up, then {REPEAT} requests, each right after a bare `GET /healthz` on the same connection; times in "
        "milliseconds at the client. Ratios are to the bare request's p50 / p95 over all those interleaved requests "
        "of the size (the first row). Folder partials are what a folder link asks for (`HX-Request`), searches what "
        "the search box asks for (`…/rows/?q=`). The conversation's partial counts as a partial (≤ 3×), its full "
        "page (the folder page with `?c=`) against ≤ 6×. No target for the patients list.",
    ]
    for run in runs:
        lines += ["", *size_text(run)]
    if len(runs) > 1:
        lines += ["", *size_ratio_text(sorted(runs, key=lambda run: run.size))]
    return "\n".join(lines)


@contextlib.contextmanager
def uninterrupted():
    """Cleanup that a second Ctrl-C (or SIGTERM) does not cut short: servers are stopped whatever happens."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main() -> int:
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    logs = Path(tempfile.mkdtemp(prefix="careinbox-bench-http-"))
    var_dir = logs / "var"
    port = services.REDIS_PORT if services.port_is_free(services.REDIS_PORT) else services.free_port()
    redis = services.PrivateRedis(port)
    print(f"== pages over HTTP, sizes {SIZES}; logs in {logs}", flush=True)
    runs = []
    try:
        redis.start()
        for number, size in enumerate(SIZES, start=1):
            runs.append(run_size(size, redis, number, var_dir, logs))
    finally:
        with uninterrupted():
            redis.stop()
            shutil.rmtree(var_dir, ignore_errors=True)
    text = report(runs, port)
    print(text)
    failures = [failure for run in runs for failure in run.failures]
    if failures:  # figures with failed requests in them are not results: results.md keeps what it had
        print(f"\n{len(failures)} request(s) failed; results.md not updated; logs in {logs}", file=sys.stderr)
        return 1
    services.write_section(SECTION, text)
    print(f"\n== written to {services.RESULTS} (section {SECTION!r}); server logs in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
