"""Feature Settings → Environment: Inbox Notifications, chat business hours and session idle timeout. Changes are
audited; bad input gets a clear error and changes nothing; a save that changes nothing writes nothing."""

import pytest
from django.urls import reverse

from adminportal.models import FeatureSetting
from inbox.models import AuditEvent

Key = FeatureSetting.Key


def setting_events():
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.SETTING_CHANGED, detail__change="feature_setting.changed"
    )


def test_the_page_shows_the_defaults(client, administrator):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:settings"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Inbox Notifications" in content
    assert 'name="inbox_notifications-is_enabled" checked' in content
    assert 'name="chat_business_hours-start" value="08:00"' in content
    assert 'name="session_idle_timeout-minutes" value="15"' in content


def test_turning_inbox_notifications_off_is_saved_and_audited(client, administrator):
    client.force_login(administrator)

    response = client.post(
        reverse("adminportal:setting_update", args=["inbox_notifications"]), {}, REMOTE_ADDR="10.0.0.9"
    )

    assert response.status_code == 302
    assert not FeatureSetting.is_on(Key.INBOX_NOTIFICATIONS)
    row = FeatureSetting.objects.get(key=Key.INBOX_NOTIFICATIONS)
    assert row.updated_by == administrator
    event = setting_events().get()
    assert event.actor == administrator and event.ip == "10.0.0.9"
    assert event.detail["key"] == "inbox_notifications"
    assert event.detail["before"] == {"is_enabled": True, "value": {}}
    assert event.detail["after"] == {"is_enabled": False, "value": {}}


def test_turning_it_back_on(client, administrator):
    client.force_login(administrator)
    client.post(reverse("adminportal:setting_update", args=["inbox_notifications"]), {})
    client.post(
        reverse("adminportal:setting_update", args=["inbox_notifications"]),
        {"inbox_notifications-is_enabled": "on"},
    )
    assert FeatureSetting.is_on(Key.INBOX_NOTIFICATIONS)
    assert setting_events().count() == 2


def test_saving_an_unchanged_setting_writes_nothing(client, administrator):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:setting_update", args=["inbox_notifications"]),
        {"inbox_notifications-is_enabled": "on"},
        follow=True,
    )
    assert b"Inbox Notifications: nothing changed." in response.content
    assert not FeatureSetting.objects.exists()
    assert not setting_events().exists()


def test_chat_business_hours_are_saved(client, administrator):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:setting_update", args=["chat_business_hours"]),
        {
            "chat_business_hours-is_enabled": "on",
            "chat_business_hours-days": ["0", "2", "4"],
            "chat_business_hours-start": "09:30",
            "chat_business_hours-end": "17:00",
            "chat_business_hours-time_zone": "America/Chicago",
        },
    )
    assert response.status_code == 302
    assert FeatureSetting.value_of(Key.CHAT_BUSINESS_HOURS) == {
        "days": [0, 2, 4],
        "start": "09:30",
        "end": "17:00",
        "time_zone": "America/Chicago",
    }
    assert setting_events().get().detail["key"] == "chat_business_hours"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"start": "18:00", "end": "08:00"}, "The end time must be after the start time."),
        ({"days": []}, "Choose at least one day, or turn business hours off."),
        ({"days": ["9"]}, "Choose days of the week."),
        ({"start": "25:00"}, "Enter a valid time."),
        ({"time_zone": "Mars/Olympus"}, "Select a valid choice."),
    ],
)
def test_bad_business_hours_are_refused(client, administrator, data, message):
    post = {
        "is_enabled": "on",
        "days": ["0", "1"],
        "start": "08:00",
        "end": "18:00",
        "time_zone": "UTC",
        **data,
    }
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:setting_update", args=["chat_business_hours"]),
        {f"chat_business_hours-{k}": v for k, v in post.items()},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not FeatureSetting.objects.exists()
    assert not setting_events().exists()


def test_the_session_idle_timeout_is_saved(client, administrator):
    client.force_login(administrator)
    client.post(
        reverse("adminportal:setting_update", args=["session_idle_timeout"]),
        {"session_idle_timeout-is_enabled": "on", "session_idle_timeout-minutes": "30"},
    )
    assert FeatureSetting.value_of(Key.SESSION_IDLE_TIMEOUT) == {"minutes": 30}


@pytest.mark.parametrize(
    ("minutes", "message"), [("0", "Use at least 1 minute."), ("abc", "Enter a whole number.")]
)
def test_a_bad_idle_timeout_is_refused(client, administrator, minutes, message):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:setting_update", args=["session_idle_timeout"]),
        {"session_idle_timeout-is_enabled": "on", "session_idle_timeout-minutes": minutes},
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not FeatureSetting.objects.exists()


def test_an_unknown_setting_is_404(client, administrator):
    client.force_login(administrator)
    assert client.post(reverse("adminportal:setting_update", args=["dark_mode"])).status_code == 404
