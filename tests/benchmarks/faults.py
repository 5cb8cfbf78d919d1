"""Fault run (``make faults``; not a test): 10,000 inbound SMS and emails through the real webhooks while the Celery
worker is SIGKILLed, Redis is stopped and restarted, and PostgreSQL is restarted; afterwards exactly 10,000
messages, none lost, none duplicated.

Everything runs on private services (``tests/benchmarks/services.py``: PostgreSQL on 5499 in a temporary cluster,
Redis on 6399 without persistence), so the shared ones are never disturbed: the production web command, one Celery worker and Celery
beat as the Procfile runs them, with the sweeper every 5 s and a 10 s grace instead of 60/60 so the run drains in
minutes. Clients behave like providers: several threads, each item retried on 503, timeouts and connection errors
until it is acknowledged with 200, and counted as sent only then.

Environment: ``FAULT_ITEMS`` (10000), ``FAULT_CLIENTS`` (8), ``FAULT_EMAIL_SHARE`` (0.3), ``FAULT_DRAIN_SECONDS`` (900).
Figures go to the "Fault run" section of ``tests/benchmarks/results.md``; the exit status is 1 when a check fails.
"""

import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import services  # noqa: E402

ITEMS = int(os.environ.get("FAULT_ITEMS", "10000"))
CLIENTS = int(os.environ.get("FAULT_CLIENTS", "8"))
EMAIL_SHARE = float(os.environ.get("FAULT_EMAIL_SHARE", "0.3"))
DRAIN_SECONDS = float(os.environ.get("FAULT_DRAIN_SECONDS", "900"))
PATIENTS = 200
UNKNOWN_SHARE = 0.2  # items from senders nobody knows: each becomes Unrecognized
LINE = "+15550100000"
INBOUND_ADDRESS = "care@clinic.example"
GIVE_UP_SECONDS = 600  # a provider stops retrying one item after this long
FAULTS_AT = (0.2, 0.45, 0.7)  # share of items acknowledged when the worker, Redis and PostgreSQL faults start


def patient_phone(i: int) -> str:
    return f"+1555020{i:04d}"


def patient_email(i: int) -> str:
    return f"patient{i}@mail.example"


def seed(env: dict) -> None:
    """A sending line, an inbound address and patients with a phone number and an email, through the factories."""
    os.environ.update(
        {k: v for k, v in env.items() if k in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY")}
    )
    os.environ["DJANGO_SETTINGS_MODULE"] = "inbox_project.settings"
    import django

    django.setup()
    from django.db import connection, transaction

    from tests.factories import (
        InboundAddressFactory,
        PatientContactMethodFactory,
        PatientFactory,
        SendingLineFactory,
    )

    with transaction.atomic():
        SendingLineFactory(number=LINE, label="Main clinic")
        InboundAddressFactory(address=INBOUND_ADDRESS)
        for i in range(PATIENTS):
            patient = PatientFactory()
            PatientContactMethodFactory(patient=patient, kind="phone", value=patient_phone(i))
            PatientContactMethodFactory(patient=patient, kind="email", value=patient_email(i))
    connection.close()


def plan(run: str) -> list[dict]:
    """The items to deliver: SMS and emails, most from known patients, each with a unique provider id."""
    rng = random.Random(run)
    items = []
    for n in range(ITEMS):
        known = rng.random() >= UNKNOWN_SHARE
        who = rng.randrange(PATIENTS)
        if rng.random() < EMAIL_SHARE:
            message_id = f"<fault-{run}-{n}@mail.example>"
            sender = patient_email(who) if known else f"stranger{n}@elsewhere.example"
            body = services.email_bytes(
                message_id=message_id, sender=sender, to=INBOUND_ADDRESS, subject=f"Fault run {n}",
                body=f"Email {n} of the fault run.",
            )  # fmt: skip
            items.append({"kind": "email", "id": message_id, "known": known, "body": body})
        else:
            sid = "SM" + uuid.UUID(int=rng.getrandbits(128)).hex
            sender = patient_phone(who) if known else f"+1555030{n:04d}"
            params = services.sms_params(sid=sid, sender=sender, to=LINE, body=f"SMS {n} of the fault run")
            items.append({"kind": "sms", "id": sid, "known": known, "params": params, "patient": who})
    return items


class Delivery:
    """Provider-like clients: post every item until it is acknowledged with 200, counting the retries."""

    def __init__(self, url: str, items: list[dict]):
        self.url, self.items = url, items
        self.next = 0
        self.acked = 0
        self.retries = 0
        self.answers: dict[str, int] = {}
        self.given_up: list[str] = []
        self.lock = threading.Lock()

    def _take(self) -> dict | None:
        with self.lock:
            if self.next >= len(self.items):
                return None
            item = self.items[self.next]
            self.next += 1
            return item

    def _count(self, answer: str) -> None:
        with self.lock:
            self.answers[answer] = self.answers.get(answer, 0) + 1

    def client(self) -> None:
        import requests

        session = requests.Session()
        sms_url, email_url = f"{self.url}/hooks/sms/twilio/", f"{self.url}/hooks/email/inbound/"
        while (item := self._take()) is not None:
            if item["kind"] == "sms":
                url, data = sms_url, item["params"]
                headers = {"X-Twilio-Signature": services.twilio_signature(url, data)}
            else:
                url, data = email_url, item["body"]
                headers = {
                    "X-Inbox-Signature": services.email_signature(data),
                    "Content-Type": "message/rfc822",
                }
            started, attempt = time.monotonic(), 0
            while True:
                try:
                    response = session.post(url, data=data, headers=headers, timeout=15)
                    answer = str(response.status_code)
                except requests.RequestException as exc:
                    answer = exc.__class__.__name__
                    session = requests.Session()
                self._count(answer)
                if answer == "200":
                    with self.lock:
                        self.acked += 1
                    break
                if answer in ("403", "404", "405", "413"):  # a refusal a provider would not retry
                    with self.lock:
                        self.given_up.append(item["id"])
                    break
                if time.monotonic() - started > GIVE_UP_SECONDS:
                    with self.lock:
                        self.given_up.append(item["id"])
                    break
                attempt += 1
                with self.lock:
                    self.retries += 1
                time.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)) * (0.5 + random.random()))


class Faults:
    """Runs the three faults while the items are delivered, at set shares of acknowledged items."""

    def __init__(self, delivery: Delivery, worker: services.AppProcess, redis, pg):
        self.delivery, self.worker, self.redis, self.pg = delivery, worker, redis, pg
        self.log: list[str] = []
        self.started = time.monotonic()

    def _note(self, text: str) -> None:
        line = f"t+{time.monotonic() - self.started:5.1f} s, {self.delivery.acked:,} acknowledged: {text}"
        self.log.append(line)
        print("   fault:", line, flush=True)

    def _wait_for(self, share: float) -> None:
        while self.delivery.acked < share * len(self.delivery.items) and self.delivery.next < len(
            self.delivery.items
        ):
            time.sleep(0.05)

    def run(self) -> None:
        self._wait_for(FAULTS_AT[0])
        self.worker.kill()
        self._note("Celery worker and its pool SIGKILLed")
        time.sleep(3)
        self.worker.start()
        self._note("Celery worker started again")

        self._wait_for(FAULTS_AT[1])
        self.redis.stop()
        self._note("Redis stopped (no persistence: every queued task is lost)")
        time.sleep(5)
        self.redis.start()
        self._note("Redis started again, empty")

        self._wait_for(FAULTS_AT[2])
        began = time.monotonic()
        self.pg.restart()
        self._note(f"PostgreSQL restarted (pg_ctl restart -m fast, {time.monotonic() - began:.1f} s)")


def counts(pg_url: str) -> dict:
    import psycopg

    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "raw": one("SELECT count(*) FROM inbox_rawinbound"),
            "raw_unprocessed": one("SELECT count(*) FROM inbox_rawinbound WHERE processed_at IS NULL"),
            "raw_failed": one("SELECT count(*) FROM inbox_rawinbound WHERE error <> ''"),
            "raw_attempts_over_1": one("SELECT count(*) FROM inbox_rawinbound WHERE attempts > 1"),
            "messages": one("SELECT count(*) FROM inbox_message WHERE direction = 'in'"),
            "distinct_provider_ids": one(
                "SELECT count(DISTINCT (provider, provider_id)) FROM inbox_message WHERE direction = 'in'"
            ),
            "linked": one(
                "SELECT count(*) FROM inbox_message m JOIN inbox_communication c ON c.id = m.communication_id "
                "WHERE m.direction = 'in' AND NOT c.is_unrecognized AND c.patient_id IS NOT NULL"
            ),
            "unrecognized": one(
                "SELECT count(*) FROM inbox_message m JOIN inbox_communication c ON c.id = m.communication_id "
                "WHERE m.direction = 'in' AND c.is_unrecognized"
            ),
            "linked_sms_communications": one(
                "SELECT count(*) FROM inbox_communication WHERE channel = 'sms' AND NOT is_unrecognized"
            ),
            "message_received_audits": one(
                "SELECT count(*) FROM inbox_auditevent WHERE action = 'message.received'"
            ),
        }


def provider_ids(pg_url: str) -> set[str]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return {
            row[0] for row in conn.execute("SELECT provider_id FROM inbox_message WHERE direction = 'in'")
        }


def alive(processes: list[services.AppProcess]) -> None:
    for process in processes:
        if process.process.poll() is not None:
            raise SystemExit(f"the {process.name} process exited:\n{process.log.read_text()[-3000:]}")


def wait_drained(pg_url: str, expected: int, processes: list[services.AppProcess]) -> tuple[float, dict]:
    """Poll until every raw item is processed (or failed for good), at most DRAIN_SECONDS."""
    started = time.monotonic()
    last = {}
    while time.monotonic() - started < DRAIN_SECONDS:
        alive(processes)
        try:
            last = counts(pg_url)
        except Exception as exc:  # the database may still be coming back
            print(f"   drain: {exc.__class__.__name__}: {exc}", flush=True)
            time.sleep(1)
            continue
        if last["raw"] >= expected and last["raw_unprocessed"] == 0:
            break
        print(f"   drain: {last['raw_unprocessed']:,} unprocessed, {last['messages']:,} messages", flush=True)
        time.sleep(2)
    return time.monotonic() - started, last


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the private services on the way out
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    logs = Path(tempfile.mkdtemp(prefix="careinbox-faults-"))
    print(f"== fault run {run}: logs in {logs}; load: {services.load()}", flush=True)
    pg, redis = services.PrivatePostgres(), services.PrivateRedis()
    processes: list[services.AppProcess] = []
    try:
        pg.start()
        redis.start()
        env = services.app_env(
            pg, redis, INBOUND_SWEEP_GRACE_SECONDS="10", INBOUND_SWEEP_INTERVAL_SECONDS="5"
        )
        print(
            f"== PostgreSQL on {pg.port} ({pg.dir}), Redis on {redis.port}: migrating and seeding", flush=True
        )
        services.manage(env, "migrate", "--noinput", "-v", "0")
        seed(env)
        items = plan(run)
        web, url = services.web(env, logs / "web.log")
        worker = services.worker(env, logs / "worker.log")
        beat = services.beat(env, logs / "beat.log", logs)
        processes += [web, worker, beat]
        time.sleep(5)
        alive(processes)
        load_before = services.load()
        print(f"== posting {len(items):,} items with {CLIENTS} clients to {url}", flush=True)

        delivery = Delivery(url, items)
        faults = Faults(delivery, worker, redis, pg)
        started = time.monotonic()
        threads = [threading.Thread(target=delivery.client, daemon=True) for _ in range(CLIENTS)]
        fault_thread = threading.Thread(target=faults.run, daemon=True)
        for thread in [*threads, fault_thread]:
            thread.start()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            print(f"   posted: {delivery.acked:,} acknowledged, {delivery.retries:,} retries", flush=True)
        post_seconds = time.monotonic() - started
        fault_thread.join(timeout=120)
        load_after_post = services.load()

        print("== waiting until every raw item is processed", flush=True)
        drain_seconds, final = wait_drained(pg.url, delivery.acked, processes)
        total_seconds = time.monotonic() - started
        stored_ids = provider_ids(pg.url)
    finally:
        for process in processes:
            process.stop()
        redis.stop()
        pg.stop()

    sent = {item["id"] for item in items if item["id"] not in set(delivery.given_up)}
    expected_linked = sum(1 for item in items if item["known"] and item["id"] in sent)
    expected_sms_communications = len(
        {item["patient"] for item in items if item["kind"] == "sms" and item["known"]}
    )
    checks = {
        f"every item acknowledged ({ITEMS:,})": delivery.acked == ITEMS and not delivery.given_up,
        "one raw item per item": final.get("raw") == delivery.acked,
        "every raw item processed, none failed": final.get("raw_unprocessed") == 0
        and final.get("raw_failed") == 0,
        f"exactly {delivery.acked:,} messages": final.get("messages") == delivery.acked,
        "no duplicate provider id": final.get("distinct_provider_ids") == final.get("messages"),
        "no message lost (every sent id stored)": stored_ids == sent,
        f"linked as expected ({expected_linked:,})": final.get("linked") == expected_linked,
        f"unrecognized as expected ({delivery.acked - expected_linked:,})": final.get("unrecognized")
        == delivery.acked - expected_linked,
        f"one SMS communication per known patient ({expected_sms_communications})": final.get(
            "linked_sms_communications"
        )
        == expected_sms_communications,
        "one 'message received' audit event per message": final.get("message_received_audits")
        == final.get("messages"),
    }
    answers = ", ".join(f"{k}: {v:,}" for k, v in sorted(delivery.answers.items()))
    emails = sum(1 for item in items if item["kind"] == "email")
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (`make faults`, `tests/benchmarks/faults.py`) on 2 cores "
        "shared with other test runs, on a private PostgreSQL (own cluster, port 5499) and Redis (port 6399, no "
        "persistence); the web command (gunicorn, one uvicorn worker), one Celery worker (prefork, concurrency 2) and Celery beat (sweeper every 5 s, "
        "10 s grace).",
        "",
        f"- load before: `{load_before}`",
        f"- load after posting: `{load_after_post}`",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| items posted (SMS / email) | {ITEMS:,} ({ITEMS - emails:,} / {emails:,}) |",
        f"| acknowledged with 200 | {delivery.acked:,} |",
        f"| client retries (503, timeouts, connection errors) | {delivery.retries:,} |",
        f"| answers seen | {answers} |",
        f"| concurrent clients | {CLIENTS} |",
        f"| posting time | {post_seconds:.1f} s ({delivery.acked / post_seconds:.0f} items/s acknowledged) |",
        f"| drain after the last acknowledgement | {drain_seconds:.1f} s |",
        f"| first post → every item processed | {total_seconds:.1f} s |",
        f"| raw items / unprocessed / with an error / needing more than one attempt | {final.get('raw', 0):,} / "
        f"{final.get('raw_unprocessed', 0):,} / {final.get('raw_failed', 0):,} / "
        f"{final.get('raw_attempts_over_1', 0):,} |",
        f"| inbound messages / distinct provider ids | {final.get('messages', 0):,} / "
        f"{final.get('distinct_provider_ids', 0):,} |",
        f"| linked / unrecognized (expected) | {final.get('linked', 0):,} / {final.get('unrecognized', 0):,} "
        f"({expected_linked:,} / {delivery.acked - expected_linked:,}) |",
        f"| linked SMS communications (expected) | {final.get('linked_sms_communications', 0)} "
        f"({expected_sms_communications}) |",
        "",
        "Faults, in order:",
        "",
        *(f"1. {line}" for line in faults.log),
        "",
        "Checks:",
        "",
        *(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()),
    ]
    text = "\n".join(lines)
    print(text)
    services.write_section("Fault run", text)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
