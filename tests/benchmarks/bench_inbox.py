"""Inbox benchmark: server time of folder pages, counts, a 50-message conversation and each kind of search, on
PostgreSQL seeded by ``seed_demo`` at two sizes (default 10,000 and 1,000,000 communications, 5 messages each).

Run with ``make bench`` (needs PostgreSQL; ``BENCH_SIZES=10000,100000`` to choose sizes). Each size gets its own
database ``carebench_<size>``, seeded once and reused. Server time is measured in-process around Django's request
handler (the test client), so it includes middleware, selectors, queries and template rendering but not the network.
Results are written to ``tests/benchmarks/results.md``.
"""

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results.md")
BASE_URL = os.environ.get("BENCH_DATABASE_BASE", "postgres://postgres@127.0.0.1:5432")
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "10000,1000000").split(",") if s]
REPEAT = int(os.environ.get("BENCH_REPEAT", "40"))


def database_url(size: int) -> str:
    return f"{BASE_URL}/carebench_{size}"


def prepare(size: int) -> None:
    """Create, migrate and seed the database for ``size`` communications unless it is already seeded; vacuum it
    (the visibility map index-only scans rely on, which autovacuum keeps in production) and refresh statistics."""
    import psycopg

    with psycopg.connect(f"{BASE_URL}/postgres", autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [f"carebench_{size}"]
        ).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE carebench_{size}")
    env = {**os.environ, "DATABASE_URL": database_url(size), "DEBUG": "1"}
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
    patients = max(200, size // 5)
    subprocess.run(
        [
            *manage,
            "seed_demo",
            "--if-empty",
            "--patients",
            str(patients),
            "--communications",
            str(size),
            "--seed",
            "1",
        ],
        env=env,
        check=True,
        cwd=ROOT,
    )
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from django.db import connection; connection.cursor().execute('VACUUM ANALYZE')",
        ],
        env=env,
        check=True,
        cwd=ROOT,
    )


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def measure_in_process(size: int) -> list[tuple[str, float, float, int]]:
    """Runs inside a child process configured for the size's database; returns (case, p50 ms, p95 ms, queries)."""
    import django

    os.environ["DATABASE_URL"] = database_url(size)
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbox_project.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from adminportal.models import User
    from inbox.folders import Folder
    from inbox.models import Communication
    from inbox.selectors import FolderFilters, folder_count

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    results = []

    def bench(name: str, client: Client, url: str, **headers) -> None:
        client.get(url, **headers)  # warm-up
        samples = []
        for _ in range(REPEAT):
            reset_queries()
            started = time.perf_counter()
            response = client.get(url, **headers)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, url, response.status_code)
        with CaptureQueriesContext(connection) as ctx:
            client.get(url, **headers)
        results.append((name, statistics.median(samples), percentile(samples, 95), len(ctx.captured_queries)))

    def bench_count(name: str, user, folder: Folder, filters: FolderFilters | None = None) -> None:
        samples = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            folder_count(user=user, folder=folder, filters=filters)  # what the navigation shows: capped
            samples.append((time.perf_counter() - started) * 1000)
        results.append((name, statistics.median(samples), percentile(samples, 95), 1))

    people = {name: User.objects.get(username=name) for name in ("nurse", "lead")}
    clients = {}
    for name, user in people.items():
        client = Client()
        client.force_login(user)
        clients[name] = client
    htmx = {"HTTP_HX_REQUEST": "true"}
    for who, folders in (
        ("nurse", [Folder.ASSIGNED_TO_ME, Folder.PRIMARY_CONTACT, Folder.MY_UNRECOGNIZED, Folder.SENT,
                   Folder.CARE_TEAM_DIRECTED, Folder.CARE_TEAM_UNRECOGNIZED]),
        ("lead", [Folder.ALL_DIRECTED, Folder.ALL_UNRECOGNIZED]),
    ):  # fmt: skip
        for folder in folders:
            url = f"/inbox/{folder.inbox}/{folder.slug}/"
            bench(f"page {folder.value} ({who})", clients[who], url, **htmx)
            bench_count(f"count {folder.value} ({who})", people[who], folder)
        if who == "lead":
            bench(
                f"page {Folder.ALL_DIRECTED.value} unassigned only ({who})",
                clients[who],
                "/inbox/all-patients/directed/?unassigned=1",
                **htmx,
            )

    # A conversation of 50 messages, seen by the lead.
    conversation = Communication.objects.filter(is_unrecognized=False).order_by("-last_message_at").first()
    from inbox.models import Message

    missing = 50 - conversation.messages.count()
    if missing > 0:
        Message.objects.bulk_create(
            Message(
                communication=conversation,
                direction="in",
                body_text=f"Benchmark message {i}",
                delivery_status="received",
            )
            for i in range(missing)
        )
    bench("open a 50-message conversation (lead)", clients["lead"], f"/inbox/c/{conversation.pk}/", **htmx)

    # Search terms taken from the data, as a user would type them: a number and an address that have communications,
    # a patient's last name, and a distinctive word of a message.
    sms = Communication.objects.filter(is_unrecognized=False, channel="sms").order_by("-last_message_at")[500]
    email = Communication.objects.filter(is_unrecognized=False, channel="email").order_by("-last_message_at")[
        700
    ]
    phone = sms.counterpart
    words = sorted((w.strip(".,!?") for w in email.last_message_preview.split()), key=len, reverse=True)
    searches = {
        "phone": f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}",
        "email": email.counterpart.upper(),
        "patient name": email.patient.last_name,
        "message text": words[0],
        "a word in most messages": "morning",
    }
    for kind, term in searches.items():
        from urllib.parse import urlencode

        bench(
            f"search by {kind} (lead)",
            clients["lead"],
            f"/inbox/all-patients/directed/?{urlencode({'q': term})}",
            **htmx,
        )
    return results


DATA_NOTE = (
    "Data: `seed_demo` at 10,000 and 1,000,000 communications (2,000 / 200,000 patients, 5 messages each), vacuumed\n"
    "and analysed after seeding. A larger organisation gets one generated team per 2,000 patients, so the demo nurse's\n"
    "panel (761 patients), assignments (1,817) and sent communications (about 2,000) are the same at both sizes while\n"
    'the All Patients folders, their counts and every search grow 100×. Counts stop at 1,001 rows ("1,000+").\n'
    "Measured on a machine shared with other test runs, so single figures move by ±30 %."
)


def write_results(all_results: dict[int, list]) -> None:
    lines = [
        "# Inbox benchmark results",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}), Python {platform.python_version()}, PostgreSQL, "
        f"{REPEAT} requests per case after one warm-up, load average {os.getloadavg()[0]:.1f} at the end. Server time in "
        "milliseconds (in-process Django handler).",
        "",
    ]
    sizes = sorted(all_results)
    header = "| case | " + " | ".join(f"{s:,} p50 | {s:,} p95" for s in sizes) + " | queries |"
    if len(sizes) > 1:
        header += f" p95 ratio {sizes[-1]:,}/{sizes[0]:,} |"
    lines += [header, "|" + " --- |" * (header.count("|") - 1)]
    by_case = {}
    for size in sizes:
        for name, p50, p95, queries in all_results[size]:
            by_case.setdefault(name, {})[size] = (p50, p95, queries)
    for name, per_size in by_case.items():
        cells = []
        for size in sizes:
            p50, p95, queries = per_size.get(size, (float("nan"), float("nan"), 0))
            cells += [f"{p50:.1f}", f"{p95:.1f}"]
        row = f"| {name} | " + " | ".join(cells) + f" | {queries} |"
        if len(sizes) > 1:
            first, last = per_size.get(sizes[0]), per_size.get(sizes[-1])
            ratio = last[1] / first[1] if first and last and first[1] else float("nan")
            row += f" {ratio:.2f} |"
        lines.append(row)
    lines += ["", DATA_NOTE]
    # Keep the other benchmarks' sections (e.g. "## Real time") that follow the Inbox table.
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    others = previous[previous.index("\n## ") :] if "\n## " in previous else ""
    RESULTS.write_text("\n".join(lines) + "\n" + others)
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        import json

        print("RESULTS " + json.dumps(measure_in_process(int(sys.argv[2]))))
        return
    import json

    all_results = {}
    for size in SIZES:
        print(f"== {size:,} communications: preparing database", flush=True)
        prepare(size)
        print(f"== {size:,} communications: measuring", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(size)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        line = next(line for line in out.stdout.splitlines() if line.startswith("RESULTS "))
        all_results[size] = [tuple(row) for row in json.loads(line[len("RESULTS ") :])]
    write_results(all_results)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
