"""The one-time code: 6 digits emailed to the address on file (never the message), stored hashed, 10 minutes,
5 wrong attempts then locked, resend rate-limited; a right code opens a session for that communication only."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from careportal.models import PatientContactMethod
from inbox import secure
from inbox.models import AuditEvent, SecureAccessCode
from inbox.secure import make_token
from tests.careportal.secure_support import (
    ADDRESS,
    MASKED,
    SECRET_TEXT,
    SUBJECT,
    last_code,
    secure_conversation,
    url,
)
from tests.factories import ContactFactory, PatientFactory, SecureMessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def message(nurse, patient):
    return secure_conversation(nurse, patient)


@pytest.fixture
def token(message):
    return make_token(message)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def age_codes(**delta) -> None:
    """Move every code (and its expiry and lock) into the past, as if time had passed."""
    shift = dt.timedelta(**delta)
    for row in SecureAccessCode.objects.all():
        row.created_at -= shift
        row.expires_at -= shift
        if row.locked_until:
            row.locked_until -= shift
        row.save()


# --- Sending -------------------------------------------------------------------------------------------------


def test_it_emails_a_six_digit_code_to_the_address_on_file(client, token):
    response = client.post(url("send_code", token))
    assert response.status_code == 302
    assert response["Location"] == url("verify", token)
    (email,) = mail.outbox
    assert email.to == [ADDRESS]
    assert len(last_code()) == 6 and last_code().isdigit()
    follow = client.get(response["Location"]).content.decode()
    assert f"Code sent to {MASKED}. It can take a minute to arrive." in follow


def test_the_code_email_never_contains_the_message(client, message, token, nurse):
    client.post(url("send_code", token))
    (email,) = mail.outbox
    html = email.alternatives[0][0]
    for private in (SECRET_TEXT, SUBJECT, nurse.first_name, nurse.last_name, "lab"):
        assert private not in email.subject
        assert private not in email.body
        assert private not in html


def test_the_code_is_stored_hashed_with_a_ten_minute_expiry(client, message, token):
    before = timezone.now()
    client.post(url("send_code", token))
    row = SecureAccessCode.objects.get()
    code = last_code()
    assert code not in row.code_hash
    assert row.sent_to == ADDRESS
    assert row.communication == message.communication and row.message == message
    assert (
        dt.timedelta(minutes=9, seconds=59) < row.expires_at - before <= dt.timedelta(minutes=10, seconds=5)
    )


def test_codes_are_random(client, nurse, patient):
    codes = set()
    for n in range(6):
        other = secure_conversation(nurse, PatientFactory(), address=f"p{n}@mail.example")
        secure.issue_code(link=secure.open_link(make_token(other)))
        codes.add(last_code(f"p{n}@mail.example"))
    assert len(codes) > 1


def test_a_contacts_address_on_file_may_receive_the_code(client, nurse, patient):
    message = secure_conversation(nurse, patient)
    mother = ContactFactory(patient=patient, email="mother@mail.example")
    communication = message.communication
    communication.contact, communication.counterpart = mother, "mother@mail.example"
    communication.save()
    to_mother = SecureMessageFactory(communication=communication, author=nurse)
    assert client.post(url("send_code", to_mother)).status_code == 302
    assert mail.outbox[-1].to == ["mother@mail.example"]


def test_it_refuses_an_address_no_longer_on_file(client, message, token):
    PatientContactMethod.objects.filter(value=ADDRESS).delete()
    with pytest.raises(secure.AddressNotOnFile):
        secure.issue_code(link=secure.open_link(token))
    assert mail.outbox == []
    assert not SecureAccessCode.objects.exists()


def test_resending_within_a_minute_is_refused(client, token):
    client.post(url("send_code", token))
    response = client.post(url("send_code", token))
    assert response.status_code == 429
    assert "less than a minute ago" in response.content.decode()
    assert len(mail.outbox) == 1


def test_a_new_code_can_be_sent_after_a_minute_and_replaces_the_old_one(client, token):
    client.post(url("send_code", token))
    first = last_code()
    age_codes(seconds=61)
    assert client.post(url("send_code", token)).status_code == 302
    second = last_code()
    if first != second:
        response = client.post(url("verify", token), {"code": first})
        assert response.status_code == 200
    assert client.post(url("verify", token), {"code": second}).status_code == 302


def test_at_most_five_codes_an_hour(client, token):
    for _ in range(5):
        assert client.post(url("send_code", token)).status_code == 302
        age_codes(seconds=61)
    response = client.post(url("send_code", token))
    assert response.status_code == 429
    assert "5 codes in the last hour" in response.content.decode()
    assert len(mail.outbox) == 5
    age_codes(hours=1)
    assert client.post(url("send_code", token)).status_code == 302


def test_the_limits_are_shared_by_every_link_to_the_conversation(client, message, nurse):
    second = SecureMessageFactory(communication=message.communication, author=nurse)
    assert client.post(url("send_code", message)).status_code == 302
    assert client.post(url("send_code", second)).status_code == 429


def test_a_code_that_cannot_be_emailed_is_withdrawn(client, token, settings, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", broken)
    response = client.post(url("send_code", token))
    assert response.status_code == 503
    assert "could not send the code" in response.content.decode()
    assert not SecureAccessCode.objects.exists()


def test_it_rejects_get_on_send_code(client, token):
    assert client.get(url("send_code", token)).status_code == 405
    assert mail.outbox == []


# --- Verifying -----------------------------------------------------------------------------------------------


def test_the_right_code_opens_a_session_for_this_communication(client, message, token):
    client.post(url("send_code", token))
    response = client.post(url("verify", token), {"code": last_code()})
    assert response.status_code == 302
    assert response["Location"] == url("thread", token)
    access = client.session["secure_access"]
    assert list(access) == [str(message.communication.pk)]
    remaining = access[str(message.communication.pk)] - timezone.now().timestamp()
    assert 29 * 60 < remaining <= 30 * 60
    assert SecureAccessCode.objects.get().used_at is not None


def test_verifying_starts_a_new_session_key(client, token):
    client.post(url("send_code", token))
    before = client.session.session_key
    client.post(url("verify", token), {"code": last_code()})
    assert client.session.session_key != before


def test_the_code_may_be_typed_with_spaces(client, token):
    client.post(url("send_code", token))
    code = last_code()
    assert client.post(url("verify", token), {"code": f" {code[:3]} {code[3:]} "}).status_code == 302


def test_a_code_works_once(client, token):
    client.post(url("send_code", token))
    code = last_code()
    client.post(url("verify", token), {"code": code})
    client.post(url("sign_out", token))
    response = client.post(url("verify", token), {"code": code})
    assert response.status_code == 200
    assert "no active code" in response.content.decode()


def test_a_wrong_code_counts_an_attempt_and_says_how_many_are_left(client, token):
    client.post(url("send_code", token))
    response = client.post(url("verify", token), {"code": wrong(last_code())})
    assert response.status_code == 200
    assert "That code is not correct. You have 4 more attempts." in response.content.decode()
    assert SecureAccessCode.objects.get().attempts == 1
    assert "secure_access" not in client.session


def test_something_that_is_not_a_code_is_refused_without_counting(client, token):
    client.post(url("send_code", token))
    for junk in ("", "12345", "abcdef", "1234567"):
        response = client.post(url("verify", token), {"code": junk})
        assert response.status_code == 200
        assert "Enter the 6-digit code" in response.content.decode()
    assert SecureAccessCode.objects.get().attempts == 0


def test_five_wrong_codes_lock_it_even_for_the_right_code(client, token):
    client.post(url("send_code", token))
    code = last_code()
    for attempt in range(1, 5):
        assert client.post(url("verify", token), {"code": wrong(code)}).status_code == 200
    response = client.post(url("verify", token), {"code": wrong(code)})
    assert response.status_code == 429
    assert "Too many incorrect codes" in response.content.decode()
    row = SecureAccessCode.objects.get()
    assert row.attempts == 5 and row.locked_until > timezone.now()
    response = client.post(url("verify", token), {"code": code})
    assert response.status_code == 429
    assert "secure_access" not in client.session
    assert SecureAccessCode.objects.get().attempts == 5


def test_while_locked_no_new_code_is_sent_and_after_the_cool_down_one_is(client, token):
    client.post(url("send_code", token))
    for _ in range(5):
        client.post(url("verify", token), {"code": wrong(last_code())})
    age_codes(minutes=2)
    response = client.post(url("send_code", token))
    assert response.status_code == 429
    assert "locked" in response.content.decode()
    assert len(mail.outbox) == 1
    age_codes(minutes=15)
    from axes.utils import reset

    reset()  # django-axes's own fifteen minutes (per address) have passed too
    assert client.post(url("send_code", token)).status_code == 302
    assert client.post(url("verify", token), {"code": last_code()}).status_code == 302


def test_an_expired_code_is_refused(client, token):
    client.post(url("send_code", token))
    SecureAccessCode.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = client.post(url("verify", token), {"code": last_code()})
    assert response.status_code == 200
    assert "This code has expired" in response.content.decode()
    assert "secure_access" not in client.session


def test_verifying_without_a_code_sent_is_refused(client, token):
    response = client.post(url("verify", token), {"code": "123456"})
    assert response.status_code == 200
    assert "request a new code" in response.content.decode()


def test_a_code_for_one_conversation_does_not_open_another(client, message, nurse, patient):
    other = secure_conversation(nurse, patient, address="maria.work@mail.example")
    client.post(url("send_code", message))
    response = client.post(url("verify", other), {"code": last_code()})
    assert response.status_code == 200
    assert "secure_access" not in client.session


def test_sign_in_and_failures_are_audited_as_the_patient(client, message, token):
    client.post(url("send_code", token))
    client.post(url("verify", token), {"code": wrong(last_code())})
    client.post(url("verify", token), {"code": last_code()}, REMOTE_ADDR="203.0.113.9")
    events = list(
        AuditEvent.objects.filter(communication=message.communication)
        .order_by("id")
        .values_list("action", "actor_label", "actor", "detail")
    )
    assert events == [
        (
            AuditEvent.Action.SIGN_IN_FAILED,
            f"patient {MASKED}",
            None,
            {"via": "secure_page", "attempts": 1, "locked": False},
        ),
        (AuditEvent.Action.SIGN_IN, f"patient {MASKED}", None, {"via": "secure_page"}),
    ]
    assert AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN).ip == "203.0.113.9"


def test_the_code_page_offers_a_new_code(client, token):
    client.post(url("send_code", token))
    page = client.get(url("verify", token)).content.decode()
    assert 'autocomplete="one-time-code"' in page
    assert "Send a new code" in page


def test_the_start_page_offers_the_code_field_while_a_code_is_live(client, token):
    assert "I already have a code" not in client.get(url("start", token)).content.decode()
    client.post(url("send_code", token))
    assert "I already have a code" in client.get(url("start", token)).content.decode()


def test_it_rejects_put_on_verify(client, token):
    assert client.put(url("verify", token)).status_code == 405


def test_django_axes_stops_one_address_guessing_codes_across_many_links(client, nurse, settings):
    """Each conversation locks its own codes after five wrong ones; django-axes also counts wrong codes per address
    across every link, so one address cannot spray guesses over many conversations. Another address is unaffected,
    and the lockout is audited."""
    from django.test import Client

    settings.AXES_FAILURE_LIMIT = 5
    links = []
    for index in range(3):
        address = f"patient{index}@mail.example"
        links.append((make_token(secure_conversation(nurse, PatientFactory(), address=address)), address))
    for (token, address), tries in zip(links[:2], (3, 2), strict=True):
        client.post(url("send_code", token))
        for _ in range(tries):
            client.post(url("verify", token), {"code": wrong(last_code(address))})
    token, address = links[2]
    client.post(url("send_code", token))
    response = client.post(url("verify", token), {"code": last_code(address)})  # even the right code
    assert response.status_code == 429
    assert "from this network" in response.content.decode()
    assert "secure_access" not in client.session
    assert AuditEvent.objects.filter(detail__locked_out=True).exists()

    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert elsewhere.post(url("verify", token), {"code": last_code(address)}).status_code == 302
