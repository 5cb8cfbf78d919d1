"""The sweeper's schedule comes from INBOUND_SWEEP_INTERVAL_SECONDS, and the benchmark's bare view exists only in
the benchmark's own URLconf (ROOT_URLCONF overridden in that process), never in the app's URLs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def settings_in_child(**env) -> dict:
    code = (
        "import json; from inbox_project import settings as s; "
        "e = s.CELERY_BEAT_SCHEDULE['sweep-unprocessed-inbound']; "
        "print(json.dumps({'schedule': e['schedule'], 'expires': e['options']['expires'], 'urlconf': s.ROOT_URLCONF}))"
    )
    child_env = {**os.environ, "DEBUG": "1", **env}
    for name in [name for name, value in env.items() if value is None]:
        child_env.pop(name)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_sweep_interval_defaults_to_a_minute_and_follows_the_environment():
    default = settings_in_child(INBOUND_SWEEP_INTERVAL_SECONDS=None)
    assert (default["schedule"], default["expires"]) == (60.0, 55)
    fast = settings_in_child(INBOUND_SWEEP_INTERVAL_SECONDS="5")
    assert fast["schedule"] == 5.0 and 0 < fast["expires"] < 5  # a late sweep is dropped, not run twice


@pytest.mark.django_db
def test_the_app_urlconf_is_the_default_and_has_no_benchmark_view(client):
    assert settings_in_child(ROOT_URLCONF=None)["urlconf"] == "inbox_project.urls"
    assert client.post("/bench/bare/").status_code == 404
