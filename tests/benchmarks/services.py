"""Private services and processes for the ingestion benchmark and the fault run (not a test module).

A PostgreSQL cluster of its own (``initdb`` into a temporary directory, port 5499 by default) and a Redis of its own
(port 6399, no persistence), so the shared PostgreSQL on 5432 and Redis on 6379 are never touched, not even when the
fault run stops and restarts them. Also: the app's processes as the Procfile runs them (gunicorn with uvicorn workers, a Celery worker,
Celery beat) pointed at those services, signed webhook payloads, and the one helper that replaces a section of
``results.md`` while keeping the other benchmarks' sections.
"""

import contextlib
import glob
import hashlib
import hmac
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The checkout whose manage.py / inbox_project the app processes run from: this repository unless BENCH_APP_DIR names
# another (a ``git worktree`` of an older commit, to compare before and after); that checkout's own .venv runs it.
ROOT = Path(os.environ.get("BENCH_APP_DIR") or REPO).resolve()
APP_PYTHON = ROOT / ".venv/bin/python"
PYTHON = str(APP_PYTHON) if ROOT != REPO and APP_PYTHON.exists() else sys.executable
RESULTS = Path(__file__).with_name("results.md")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5499"))
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6399"))
DATABASE = "careinbox"
TWILIO_TOKEN = "bench-twilio-token"
EMAIL_SECRET = "bench-inbound-email-secret"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]  # the newest installed major version
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"PostgreSQL's {name} was not found (apt-get install postgresql)")
    return path


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and the server refuse to run as root: run them as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections in TIME_WAIT do not count
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1:``port`` with its data and socket in a temporary directory."""

    def __init__(self, port: int = PG_PORT):
        if not port_is_free(port):
            raise SystemExit(f"port {port} is taken: is another benchmark running? (BENCH_PG_PORT to change)")
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="careinbox-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.dir, postgres.pw_uid, postgres.pw_gid)
        self.url = f"postgres://postgres@127.0.0.1:{port}/{DATABASE}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> "PrivatePostgres":
        subprocess.run(
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
            "-c max_connections=100 -c shared_buffers=128MB"
        )
        self._ctl("-l", str(self.log), "-o", options, "start")
        subprocess.run(
            _as_postgres([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE]),
            check=True,
        )  # fmt: skip
        return self

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every open connection is cut, as in a failover or an upgrade."""
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server on 127.0.0.1:``port`` with no persistence: stopping it loses every queued task."""

    def __init__(self, port: int = REDIS_PORT):
        if not port_is_free(port):
            raise SystemExit(
                f"port {port} is taken: is another benchmark running? (BENCH_REDIS_PORT to change)"
            )
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


def app_env(pg: PrivatePostgres, redis: PrivateRedis, **extra: str) -> dict:
    """The environment of every app process: production settings (DEBUG off) on the private services."""
    env = {
        **os.environ,
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis.url,
        "DEBUG": "0",
        "SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789abcdef",
        "SECURE_SSL_REDIRECT": "0",  # plain http on the loopback, as behind a TLS-terminating proxy
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_ACCOUNT_SID": "ACbench",
        "INBOUND_EMAIL_SECRET": EMAIL_SECRET,
        "SMS_BACKEND": "inbox.delivery.ConsoleSmsBackend",
        "EMAIL_URL": "locmem://",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    for name in ("DJANGO_ALLOW_ASYNC_UNSAFE", "PYTEST_VERSION", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class AppProcess:
    """One app process (web, worker or beat) in its own session, so it can be killed with all its children."""

    name: str
    command: list[str]
    env: dict
    log: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    extra: dict = field(default_factory=dict)

    def start(self) -> "AppProcess":
        self.starts += 1
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the process and its children (a worker's pool processes): no shutdown, no acks."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def web(env: dict, log: Path) -> tuple[AppProcess, str]:
    """One web process as the Procfile's ``web`` runs it (gunicorn with one uvicorn worker: the benchmarks that spread
    their clients over several web processes start several of these); returns once ``/healthz`` answers."""
    return gunicorn_web({**env, "WEB_CONCURRENCY": "1"}, log)


def procfile_web() -> list[str]:
    """The Procfile's ``web`` command as arguments, program first: the one definition of how the production web
    server starts, read by everything here that starts it (and by the two-process browser test)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return shlex.split(line.removeprefix("web:"))
    raise SystemExit(f"{ROOT / 'Procfile'} has no web line")


GUNICORN_ARGS = procfile_web()[1:]


def gunicorn_web(env: dict, log: Path, timeout: float = 120) -> tuple[AppProcess, str]:
    """The Procfile's production ``web``: gunicorn supervising uvicorn workers (``inbox_project/gunicorn_conf.py``,
    ``WEB_CONCURRENCY`` workers if ``env`` sets it), on a free loopback port. Returns once ``/healthz`` answers
    and every worker process has been forked."""
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    script = Path(PYTHON).parent / "gunicorn"  # the console script the Procfile runs, from the app's venv
    command = [str(script)] if script.exists() else [PYTHON, "-m", "gunicorn"]
    process = AppProcess("web", [*command, *GUNICORN_ARGS], env, log).start()
    url = f"http://127.0.0.1:{port}"
    try:
        workers = gunicorn_workers(env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.process.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if len(children(process.process.pid)) >= workers:
                process.extra["workers"] = workers
                return process, url
            time.sleep(0.2)
        raise SystemExit(f"gunicorn at {url} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
    except BaseException:  # not ready, or interrupted: nothing is left running
        process.stop()
        raise


def gunicorn_workers(env: dict) -> int:
    """How many workers ``inbox_project.gunicorn_conf`` starts with ``env`` (its own default when unset)."""
    done = subprocess.run(
        [PYTHON, "-c", "import inbox_project.gunicorn_conf as conf; print(conf.workers)"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout.strip())


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (a gunicorn arbiter's workers)."""
    return [child for child, (ppid, _, _) in process_cpu().items() if ppid == pid]


def worker(env: dict, log: Path, concurrency: int = 2) -> AppProcess:
    """One Celery worker as the Procfile's ``worker`` runs it (prefork, ``CELERY_CONCURRENCY`` default 2)."""
    command = [PYTHON, "-m", "celery", "-A", "inbox_project", "worker", "--loglevel", "WARNING",
               "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "-n", "bench@%h"]  # fmt: skip
    return AppProcess("worker", command, env, log).start()


def beat(env: dict, log: Path, schedule_dir: Path) -> AppProcess:
    command = [PYTHON, "-m", "celery", "-A", "inbox_project", "beat", "--loglevel", "WARNING",
               "--schedule", str(schedule_dir / "celerybeat-schedule")]  # fmt: skip
    return AppProcess("beat", command, env, log).start()


# --- What providers send ---------------------------------------------------------------------------------------


def twilio_signature(url: str, params: dict) -> str:
    from twilio.request_validator import RequestValidator

    return RequestValidator(TWILIO_TOKEN).compute_signature(url, params)


def email_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(EMAIL_SECRET.encode(), body, hashlib.sha256).hexdigest()


def sms_params(*, sid: str, sender: str, to: str, body: str) -> dict:
    return {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": "ACbench", "From": sender, "To": to,
            "Body": body, "NumMedia": "0", "NumSegments": "1"}  # fmt: skip


def email_bytes(*, message_id: str, sender: str, to: str, subject: str, body: str) -> bytes:
    from email.message import EmailMessage
    from email.utils import formatdate

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"], msg["Message-ID"] = formatdate(usegmt=True), message_id
    msg.set_content(body)
    return msg.as_bytes()


# --- results.md -------------------------------------------------------------------------------------------------


def write_section(title: str, text: str) -> None:
    """Replace (or append) the ``## title`` section of results.md, keeping every other section as it is."""
    heading = f"## {title}"
    existing = RESULTS.read_text() if RESULTS.exists() else ""
    if heading + "\n" in existing:
        before, _, rest = existing.partition(heading + "\n")
        following = rest.find("\n## ")
        existing = before.rstrip("\n") + ("\n\n" + rest[following + 1 :] if following != -1 else "")
    section = f"{heading}\n\n{text.strip()}\n"
    RESULTS.write_text((existing.rstrip("\n") + "\n\n" if existing.strip() else "") + section)


def load() -> str:
    """The machine's load as ``uptime`` reports it (other helpers' tests share these 2 cores)."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def process_cpu() -> dict[int, tuple[int, int, float]]:
    """Every process's parent, session and CPU seconds so far (user + system, with reaped children), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[1] = ppid, [3] = session, [11..14] = utime, stime, cutime, cstime
            stats[int(entry)] = (int(fields[1]), int(fields[3]), sum(int(f) for f in fields[11:15]) / tick)
    return stats


def group_cpu(stats: dict[int, tuple[int, int, float]], leader: int) -> float:
    """CPU seconds of a process group: the leader, its children and its session (an app process started by
    ``AppProcess`` is its own session; a server's backends are its children)."""
    return sum(cpu for pid, (ppid, session, cpu) in stats.items() if leader in (pid, ppid, session))


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]
