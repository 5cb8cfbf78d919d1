"""``make run`` as a newcomer changes it: links sent to patients (secure email, chat) follow the port the demo is
served on, unless PUBLIC_BASE_URL is set."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_environment(**variables) -> str:
    """PUBLIC_BASE_URL as ``make run``'s recipe exports it (its commands printed by ``make -n``, not run)."""
    printed = subprocess.run(
        ["make", "-n", "run", *(f"{k}={v}" for k, v in variables.items() if k != "env")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    export = next(line for line in printed.splitlines() if line.startswith("export DEBUG="))
    env = {k: v for k, v in os.environ.items() if k != "PUBLIC_BASE_URL"} | variables.get("env", {})
    shown = subprocess.run(
        ["bash", "-c", export.rstrip("\\ ").rstrip("; ") + '; echo "$PUBLIC_BASE_URL"'],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return shown.stdout.strip()


def test_links_to_patients_follow_the_host_and_port_of_make_run():
    assert run_environment(PORT="8101") == "http://127.0.0.1:8101"
    assert run_environment(HOST="0.0.0.0", PORT="9000") == "http://0.0.0.0:9000"
    assert (
        run_environment(PORT="8101", env={"PUBLIC_BASE_URL": "https://care.example"})
        == "https://care.example"
    )


def test_make_run_receives_smtp_in_the_web_process_and_says_where():
    printed = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "INBOX_EMBEDDED_SMTP=${INBOX_EMBEDDED_SMTP:-1}" in printed
    assert "SMTP_HOST=${SMTP_HOST:-127.0.0.1} SMTP_PORT=${SMTP_PORT:-2525}" in printed
    assert 'echo "Inbound SMTP: $SMTP_HOST:$SMTP_PORT' in printed
    assert "/demo/patient/" in printed
