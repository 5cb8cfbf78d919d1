"""Chat business hours (Admin Portal → Feature Settings → Chat business hours) and the out-of-hours automatic reply:
the first patient message of a closed period is answered with when the team will be back; later ones are not; none
during hours or with the setting off. Time is frozen by filing raw items received at a chosen moment."""

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from adminportal.models import FeatureSetting
from careportal import chat_hours
from inbox.ingest import pipeline
from inbox.models import AuditEvent, Communication, Message, RawInbound
from tests.factories import ChatCommunicationFactory, FeatureSettingFactory, RawInboundFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00", "time_zone": "America/Chicago"}


def at(day, hour, minute=0, zone=CHICAGO):
    """2025-06-02 is a Monday: ``at(0, 9)`` is Monday 9:00, ``at(5, 10)`` Saturday 10:00 (Chicago)."""
    return dt.datetime(2025, 6, 2 + day, hour, minute, tzinfo=zone)


def hours(value=WEEKDAYS, enabled=True):
    FeatureSettingFactory(key=FeatureSetting.Key.CHAT_BUSINESS_HOURS, value=value, is_enabled=enabled)
    return chat_hours.business_hours()


def patient_writes(patient, text, when):
    """File a chat message as if the patient wrote it at ``when``."""
    raw = RawInboundFactory(
        source=RawInbound.Source.CHAT,
        provider_id=f"{patient.pk}:{uuid.uuid4()}",
        payload={"patient_id": patient.pk, "contact_id": None, "text": text},
        received_at=when,
    )
    assert pipeline.process(raw.pk) == "processed"
    return raw


def auto_replies():
    return Message.objects.filter(is_auto_reply=True).order_by("created_at", "id")


# --- Reading the setting ---------------------------------------------------------------------------------------


def test_the_default_is_weekdays_eight_to_six_in_the_organisations_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    default = chat_hours.business_hours()
    assert default.is_enabled
    assert default.days == frozenset({0, 1, 2, 3, 4})
    assert (default.start, default.end) == (dt.time(8), dt.time(18))
    assert default.time_zone == NEW_YORK
    assert default.summary == "Monday–Friday, 8:00 AM–6:00 PM (America/New_York)"


def test_hours_every_day_read_as_every_day():
    every_day = hours({"days": [6, 5, 4, 3, 2, 1, 0], "start": "07:30", "end": "19:00", "time_zone": "UTC"})
    assert every_day.summary == "Every day, 7:30 AM–7:00 PM (UTC)"


def test_a_time_zone_in_the_setting_wins_over_the_organisations(settings):
    settings.TIME_ZONE = "America/New_York"
    assert hours().time_zone == CHICAGO


@pytest.mark.parametrize(
    "value",
    [
        {"days": "weekdays", "start": "08:00", "end": "18:00"},
        {"days": [0, 9], "start": "08:00", "end": "18:00"},
        {"days": [0], "start": "8am", "end": "18:00"},
        {"days": [0], "start": "18:00", "end": "08:00"},
        {"days": [True], "start": "08:00", "end": "18:00"},
        [],
    ],
)
def test_a_malformed_setting_falls_back_to_the_default_hours(value):
    read = hours(value)
    assert read.days == frozenset({0, 1, 2, 3, 4})
    assert (read.start, read.end) == (dt.time(8), dt.time(18))


def test_an_unknown_time_zone_falls_back_to_the_organisations(settings):
    settings.TIME_ZONE = "America/New_York"
    assert hours({**WEEKDAYS, "time_zone": "Mars/Olympus"}).time_zone == NEW_YORK


# --- Open or closed, and when next open --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment, is_open",
    [
        (at(0, 8), True),
        (at(0, 17, 59), True),
        (at(0, 18), False),
        (at(0, 7, 59), False),
        (at(4, 12), True),
        (at(5, 12), False),
        (at(6, 12), False),
        (at(0, 8, 59, zone=NEW_YORK), False),  # 7:59 in Chicago
        (at(0, 9, zone=NEW_YORK), True),  # 8:00 in Chicago
    ],
)
def test_the_team_is_open_only_within_the_hours_in_the_settings_time_zone(moment, is_open):
    assert hours().is_open(moment) is is_open


def test_switched_off_the_team_is_always_answering():
    assert hours(enabled=False).is_open(at(6, 3))


def test_the_next_opening_is_the_next_listed_day_at_the_start_time():
    read = hours()
    assert read.next_opening(at(0, 6)) == at(0, 8)
    assert read.next_opening(at(0, 19)) == at(1, 8)
    assert read.next_opening(at(4, 18, 30)) == at(7, 8)
    assert read.next_opening(at(5, 10)) == at(7, 8)


def test_with_no_days_listed_there_is_no_next_opening():
    assert hours({"days": [], "start": "08:00", "end": "18:00"}).next_opening(at(0, 9)) is None


def test_a_closed_period_starts_at_the_last_closing_time():
    read = hours()
    assert read.closed_since(at(5, 10)) == at(4, 18)
    assert read.closed_since(at(1, 6)) == at(0, 18)


def test_the_reply_says_when_the_team_is_back_in_the_patients_time_zone():
    text = chat_hours.out_of_hours_text(hours(), at(5, 10), "America/New_York")
    assert "will be back on Monday, June 9 at 9:00 AM (EDT) to answer it." in text
    assert text.startswith("Thank you for your message. Your care team is away right now")
    assert "call 911" in text


def test_the_reply_says_today_or_tomorrow_when_it_is_soon():
    read = hours()
    assert "will be back today at 8:00 AM (CDT)" in chat_hours.out_of_hours_text(
        read, at(0, 6), "America/Chicago"
    )
    assert "will be back tomorrow at 8:00 AM (CDT)" in chat_hours.out_of_hours_text(
        read, at(0, 19), "America/Chicago"
    )


# --- The automatic reply -------------------------------------------------------------------------------------------


def test_the_first_message_outside_hours_gets_an_automatic_reply(patient):
    hours()
    patient_writes(patient, "Is the clinic open?", at(5, 10))
    reply = auto_replies().get()
    assert reply.direction == Message.Direction.OUTBOUND
    assert (reply.author, reply.provider, reply.is_auto_reply) == (None, Message.Provider.CHAT, True)
    assert reply.delivery_status == Message.DeliveryStatus.SENT
    assert "Monday, June 9 at 8:00 AM (CDT)" in reply.body_text
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.MESSAGE_SENT, actor_label="Chat auto-reply"
    ).exists()


def test_the_automatic_reply_gives_the_time_in_the_patients_own_time_zone(patient):
    hours()
    patient.time_zone = "America/New_York"
    patient.save(update_fields=["time_zone"])
    patient_writes(patient, "Is the clinic open?", at(5, 10))
    assert "Monday, June 9 at 9:00 AM (EDT)" in auto_replies().get().body_text


def test_the_automatic_reply_does_not_replace_the_patients_words_in_the_inbox(patient):
    hours()
    patient_writes(patient, "Is the clinic open?", at(5, 10))
    communication = Communication.objects.get()
    assert communication.last_message_preview == "Is the clinic open?"
    assert communication.last_message_direction == Message.Direction.INBOUND
    assert communication.status == Communication.Status.OPEN


def test_later_messages_in_the_same_closed_period_get_no_second_reply(patient):
    hours()
    patient_writes(patient, "Hello?", at(4, 19))
    patient_writes(patient, "Anyone?", at(5, 10))
    patient_writes(patient, "Still waiting", at(6, 22))
    assert auto_replies().count() == 1


def test_a_new_closed_period_gets_a_new_reply(patient):
    hours()
    patient_writes(patient, "Friday evening", at(4, 19))
    patient_writes(patient, "Monday morning, before opening", at(7, 6))
    patient_writes(patient, "Monday evening", at(7, 20))
    assert auto_replies().count() == 2


def test_no_reply_during_business_hours(patient):
    hours()
    patient_writes(patient, "Quick question", at(2, 11))
    assert not auto_replies().exists()


def test_no_reply_when_business_hours_are_switched_off(patient):
    hours(enabled=False)
    patient_writes(patient, "Quick question", at(6, 3))
    assert not auto_replies().exists()


def test_the_reply_is_judged_when_the_patient_wrote_not_when_the_worker_filed_it(patient):
    hours()
    patient_writes(patient, "Written during hours, filed later", at(2, 17, 59))
    assert not auto_replies().exists()


def test_a_closed_chat_reopened_out_of_hours_stays_open_with_its_reply(patient):
    hours()
    conversation = ChatCommunicationFactory(patient=patient, status=Communication.Status.CLOSED)
    patient_writes(patient, "Back again", at(5, 10))
    conversation.refresh_from_db()
    assert conversation.status == Communication.Status.OPEN
    assert conversation.messages.filter(is_auto_reply=True).count() == 1
