"""Ingestion benchmark (``make bench-ingest``; not a test), on a private PostgreSQL and Redis
(``tests/benchmarks/services.py``), with the production web command (gunicorn, one uvicorn worker per web process), one Celery worker (prefork, concurrency 2) and Celery beat as the
Procfile runs them, DEBUG off:

a. Acknowledgement latency of the Twilio SMS webhook (signature check, raw item stored in its own transaction,
   processing queued) against a bare Django view on the same web process, through the same middleware and the
   same HTTP client: after a warm-up, N requests to each, interleaved one by one so both see the same load,
   sequential, with the worker filing the SMS in the background as in production. Target: webhook p95 ≤ 20 ms.
b. Ingestion throughput: M SMS from recognised numbers posted by concurrent clients; from the first post to the
   moment the last one is stored as a message linked to its patient (polled in the database). Target ≥ 300/s.

The bare view is mounted only here: the web process runs with ``ROOT_URLCONF`` set to this module, whose
``urlpatterns`` are the app's plus ``bench/bare/``; production URLs stay as they are.

Environment: ``BENCH_ACK_REQUESTS`` (2000), ``BENCH_WARMUP`` (200), ``BENCH_THROUGHPUT_MESSAGES`` (3000),
``BENCH_CLIENTS`` (8), ``BENCH_PATIENTS`` (500). Figures go to the "Ingestion" section of
``tests/benchmarks/results.md``, with the machine's load (other helpers' tests share the 2 cores).
"""

import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

BARE_PATH = "bench/bare/"

if __name__ != "__main__":
    # Imported by the benchmark's web process as its URLconf (ROOT_URLCONF=tests.benchmarks.bench_ingest).
    from django.http import HttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_POST

    from inbox.views import EMPTY_TWIML
    from inbox_project.urls import urlpatterns as app_urlpatterns

    @csrf_exempt
    @require_POST
    def bare(request):
        """The baseline: Django's request handling and middleware, the same answer, no work."""
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")

    urlpatterns = [path(BARE_PATH, bare), *app_urlpatterns]

else:
    ROOT = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(ROOT))
    from tests.benchmarks import services

ACK_REQUESTS = int(os.environ.get("BENCH_ACK_REQUESTS", "2000"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "200"))
MESSAGES = int(os.environ.get("BENCH_THROUGHPUT_MESSAGES", "3000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
# Web processes for (b), clients spread over them as a load balancer would (DESIGN.md: scaling out is more ASGI web
# processes). One web process holds one GIL, so one process cannot use two cores.
WEB_PROCESSES = int(os.environ.get("BENCH_WEB_PROCESSES", "2"))
PATIENTS = int(os.environ.get("BENCH_PATIENTS", "500"))
LINE = "+15550100000"
TARGET_ACK_P95_MS, TARGET_RATE = 20.0, 300.0


def patient_phone(i: int) -> str:
    return f"+1555020{i:04d}"


def seed(env: dict) -> None:
    """A sending line and patients with a phone number each, through the factories."""
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "inbox_project.settings"
    import django

    django.setup()
    from django.db import connection, transaction

    from tests.factories import PatientContactMethodFactory, PatientFactory, SendingLineFactory

    with transaction.atomic():
        SendingLineFactory(number=LINE, label="Main clinic")
        for i in range(PATIENTS):
            PatientContactMethodFactory(patient=PatientFactory(), kind="phone", value=patient_phone(i))
    connection.close()


def signed_sms(url: str, n: int, tag: str) -> tuple[dict, dict]:
    sid = "SM" + uuid.uuid4().hex
    params = services.sms_params(sid=sid, sender=patient_phone(n % PATIENTS), to=LINE, body=f"{tag} {n}")
    return params, {"X-Twilio-Signature": services.twilio_signature(url, params)}


def measure_ack(base: str) -> dict[str, list[float]]:
    """Sequential POSTs, webhook and bare view interleaved, one keep-alive connection; milliseconds."""
    import requests

    session = requests.Session()
    hook, bare_url = f"{base}/hooks/sms/twilio/", f"{base}/{BARE_PATH}"
    samples: dict[str, list[float]] = {"webhook": [], "bare": []}
    for n in range(WARMUP + ACK_REQUESTS):
        params, headers = signed_sms(hook, n, "ack")
        # Alternate which goes first, so neither always follows the other's work.
        order = (("webhook", hook), ("bare", bare_url)) if n % 2 else (("bare", bare_url), ("webhook", hook))
        for name, url in order:
            started = time.perf_counter()
            response = session.post(url, data=params, headers=headers, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (name, response.status_code, response.text[:200])
            if n >= WARMUP:
                samples[name].append(elapsed)
    return samples


def linked_count(pg_url: str, tag: str) -> int:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM inbox_message m JOIN inbox_communication c ON c.id = m.communication_id "
            "WHERE m.direction = 'in' AND c.patient_id IS NOT NULL AND NOT c.is_unrecognized "
            "AND m.body_text LIKE %s",
            [f"{tag} %"],
        ).fetchone()[0]


def wait_for(pg_url: str, tag: str, expected: int, timeout: float) -> float | None:
    """Poll until ``expected`` tagged messages are linked; the time of the last poll that saw them, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if linked_count(pg_url, tag) >= expected:
            return time.monotonic()
        time.sleep(0.05)
    return None


def cpu_seconds(groups: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds (user + system, with reaped children) used so far by each named process group: an app process's
    session (it and its children, e.g. the worker's pool), or a server and its children (PostgreSQL's backends), and
    this process (the benchmark's clients)."""
    stats = services.process_cpu()
    used = {name: services.group_cpu(stats, leader) for name, leader in groups.items() if leader is not None}
    used["benchmark clients"] = time.process_time()
    return used


def measure_throughput(bases: list[str], pg_url: str) -> dict:
    """The clients share the two cores with the system they load, so they are as light as a client can be: the
    standard library's keep-alive HTTP connection and bodies encoded before the clock starts (``requests`` cost
    0.9 ms of CPU per message, an eighth of everything)."""
    from http.client import HTTPConnection
    from urllib.parse import urlencode, urlsplit

    hooks = [f"{base}/hooks/sms/twilio/" for base in bases]
    # Signed and encoded before the clock starts, for each web process's address (the signature covers the URL);
    # each message is posted once, to the process of the client that takes it.
    prepared = []
    for hook in hooks:
        bodies = []
        for n in range(MESSAGES):
            params, headers = signed_sms(hook, n, "load")
            headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
            bodies.append((urlencode(params).encode(), headers))
        prepared.append(bodies)
    lock, state = threading.Lock(), {"next": 0, "retries": 0, "acked": 0}

    def client(index: int) -> None:
        hook = urlsplit(hooks[index % len(hooks)])
        bodies = prepared[index % len(hooks)]
        connection = HTTPConnection(hook.hostname, hook.port, timeout=30)

        def post(body: bytes, headers: dict) -> int:
            nonlocal connection
            try:
                connection.request("POST", hook.path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                return response.status
            except OSError:
                connection.close()
                connection = HTTPConnection(hook.hostname, hook.port, timeout=30)
                return 0

        while True:
            with lock:
                if state["next"] >= len(bodies):
                    connection.close()
                    return
                body, headers = bodies[state["next"]]
                state["next"] += 1
            while post(body, headers) != 200:
                with lock:
                    state["retries"] += 1
                time.sleep(0.1)
            with lock:
                state["acked"] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posted = time.monotonic()
    done = wait_for(pg_url, "load", MESSAGES, timeout=600)
    return {
        "post_seconds": posted - started,
        "total_seconds": (done - started) if done else None,
        "retries": state["retries"],
        "linked": linked_count(pg_url, "load"),
    }


def main() -> int:
    logs = Path(tempfile.mkdtemp(prefix="careinbox-bench-ingest-"))
    print(f"== ingestion benchmark: logs in {logs}; load: {services.load()}", flush=True)
    pg, redis = services.PrivatePostgres(), services.PrivateRedis()
    processes: list[services.AppProcess] = []
    try:
        pg.start()
        redis.start()
        env = services.app_env(pg, redis, ROOT_URLCONF="tests.benchmarks.bench_ingest")
        services.manage(env, "migrate", "--noinput", "-v", "0")
        seed(env)
        web, base = services.web(env, logs / "web.log")
        processes += [
            web,
            services.worker(env, logs / "worker.log"),
            services.beat(env, logs / "beat.log", logs),
        ]
        webs, bases = [web], [base]
        for n in range(2, WEB_PROCESSES + 1):
            other, other_base = services.web(env, logs / f"web{n}.log")
            processes.append(other)
            webs.append(other)
            bases.append(other_base)
        time.sleep(3)
        print(f"== a. {ACK_REQUESTS:,} + {ACK_REQUESTS:,} sequential acks after {WARMUP} warm-up", flush=True)
        load_ack = services.load()
        ack = measure_ack(base)
        wait_for(pg.url, "ack", WARMUP + ACK_REQUESTS, timeout=300)  # let the worker catch up before (b)
        print(f"== b. {MESSAGES:,} SMS from {CLIENTS} concurrent clients", flush=True)
        load_before = services.load()
        postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
        groups = {"web": processes[0].process.pid, "worker": processes[1].process.pid,
                  "beat": processes[2].process.pid, "PostgreSQL": postmaster, "Redis": redis.process.pid}  # fmt: skip
        for n, other in enumerate(webs[1:], start=2):
            groups[f"web {n}"] = other.process.pid
        cpu_before = cpu_seconds(groups)
        throughput = measure_throughput(bases, pg.url)
        cpu_after = cpu_seconds(groups)
        load_after = services.load()
    finally:
        for process in processes:
            process.stop()
        redis.stop()
        pg.stop()

    rows = []
    for name, label in (("webhook", "`POST /hooks/sms/twilio/` (signed SMS)"), ("bare", "bare Django view")):
        s = ack[name]
        rows.append(
            f"| {label} | {len(s):,} | {statistics.median(s):.1f} | {services.percentile(s, 95):.1f} | "
            f"{services.percentile(s, 99):.1f} | {max(s):.1f} |"
        )
    overhead = services.percentile(ack["webhook"], 95) - services.percentile(ack["bare"], 95)
    total = throughput["total_seconds"]
    rate = MESSAGES / total if total else 0.0
    text = "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`make bench-ingest`, `tests/benchmarks/bench_ingest.py`) "
            "on 2 cores shared with other test runs; private PostgreSQL and Redis, "
            f"{WEB_PROCESSES} web process{'es' if WEB_PROCESSES > 1 else ''} (the first also serves a.), one "
            "Celery worker (prefork, concurrency 2) and Celery beat, DEBUG off.",
            "",
            f"a. Acknowledgement latency, milliseconds at the client, {ACK_REQUESTS:,} sequential requests each after "
            f"{WARMUP} warm-up, interleaved, one keep-alive connection, the worker filing in the background "
            f"(target: webhook p95 ≤ {TARGET_ACK_P95_MS:.0f} ms). Load: `{load_ack}`.",
            "",
            "| endpoint | requests | p50 | p95 | p99 | max |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Webhook p95 − bare p95: {overhead:.1f} ms.",
            "",
            f"b. Throughput webhook → stored → linked: {MESSAGES:,} SMS from {PATIENTS} recognised numbers, "
            f"{CLIENTS} concurrent clients spread over {len(bases)} web process{'es' if len(bases) > 1 else ''} "
            f"(target ≥ {TARGET_RATE:.0f} messages/s). Load before: `{load_before}`; "
            f"after: `{load_after}`.",
            "",
            "| figure | value |",
            "| --- | --- |",
            f"| all acknowledged after | {throughput['post_seconds']:.1f} s "
            f"({MESSAGES / throughput['post_seconds']:.0f} acks/s) |",
            f"| client retries | {throughput['retries']} |",
            f"| last message linked after | {f'{total:.1f} s' if total else 'not within 600 s'} |",
            f"| linked messages | {throughput['linked']:,} / {MESSAGES:,} |",
            f"| throughput, first post → last linked | **{rate:.0f} messages/s** |",
            "",
            "CPU during (b) per message, by process (user + system from `/proc`, children included; the machine's "
            "other tenants not counted):",
            "",
            "| process | CPU ms per message |",
            "| --- | --- |",
            *(
                f"| {name} | {(cpu_after[name] - cpu_before[name]) * 1000 / MESSAGES:.2f} |"
                for name in cpu_after
            ),
            f"| total | {sum(cpu_after[n] - cpu_before[n] for n in cpu_after) * 1000 / MESSAGES:.2f} |",
        ]
    )
    print(text)
    services.write_section("Ingestion", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
