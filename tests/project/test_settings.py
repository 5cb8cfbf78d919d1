"""Environment-driven settings: production defaults and the deploy checklist."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    inherited = {"DEBUG", "SECRET_KEY", "PYTEST_VERSION", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    environment = {k: v for k, v in os.environ.items() if k not in inherited}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY="x9!" + "k" * 60 + "Q7#zP2@vL5$mN8&",
        ALLOWED_HOSTS="inbox.clinic.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off():
    result = run_manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_email_url_chooses_the_backend():
    from inbox_project.settings import _email_settings

    smtp = _email_settings("smtp://mailer:s%40cret@smtp.clinic.example:587?tls=1")
    assert smtp["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (smtp["EMAIL_HOST"], smtp["EMAIL_PORT"], smtp["EMAIL_HOST_PASSWORD"]) == (
        "smtp.clinic.example",
        587,
        "s@cret",
    )
    assert smtp["EMAIL_USE_TLS"] is True
    assert _email_settings("locmem://")["EMAIL_BACKEND"] == "django.core.mail.backends.locmem.EmailBackend"


def test_email_url_with_an_unknown_scheme_is_a_clear_error():
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    from inbox_project.settings import _email_settings

    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL scheme"):
        _email_settings("carrier-pigeon://loft")


def test_postgresql_connections_come_from_a_bounded_pool_not_per_thread_persistence():
    """Under ASGI each request runs in its own thread: persistent connections (CONN_MAX_AGE) would keep one per
    finished request; a pool per process bounds them."""
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d['OPTIONS']['pool']['max_size'], d['OPTIONS']['pool']['min_size'])",
        DEBUG="1",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/nowhere",
        DATABASE_POOL_MAX_SIZE="7",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["0", "7", "2"]


def test_a_sqlite_database_url_gets_no_pool():
    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print('pool' in settings.DATABASES['default'].get('OPTIONS', {}))",
        DEBUG="1",
        DATABASE_URL="sqlite:////tmp/care-inbox-settings-check.sqlite3",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"
