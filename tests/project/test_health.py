"""/healthz and /readyz."""

import pytest
from django.urls import reverse


def test_healthz_answers_ok_without_touching_the_database(db, client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_rejects_post(client):
    assert client.post(reverse("healthz")).status_code == 405


@pytest.mark.django_db
def test_readyz_reports_every_part_ready(client):
    response = client.get(reverse("readyz"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "channel_layer": "ok", "broker": "ok"}
    assert body["failing"] == []


@pytest.mark.django_db
def test_readyz_is_503_naming_the_channel_layer_and_broker_when_redis_is_unreachable(client, settings):
    unreachable = "redis://127.0.0.1:1/0"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [unreachable]}}
    }
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from inbox_project.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = unreachable
    try:
        response = client.get(reverse("readyz"))
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["channel_layer", "broker"]
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_is_503_naming_the_database_when_it_fails(client, monkeypatch):
    from inbox_project import health

    def broken():
        raise ConnectionError("database is down")

    monkeypatch.setitem(health.CHECKS, "database", broken)
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
