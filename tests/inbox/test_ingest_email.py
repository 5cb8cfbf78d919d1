"""Inbound email: threading, recognition, auto-assignment, auto-replies, bounces, bodies and attachments."""

import uuid

import pytest
from django.utils import timezone

from inbox.ingest.pipeline import process
from inbox.models import AuditEvent, Channel, Communication, Message, RawInbound
from tests.factories import (
    CommunicationFactory,
    ContactFactory,
    InboundAddressFactory,
    MessageFactory,
    PatientContactMethodFactory,
    PatientFactory,
    UserFactory,
)
from tests.inbox.ingest_support import (  # noqa: F401  (eager_celery, hook_secrets: autouse fixtures)
    build_email,
    eager_celery,
    hook_secrets,
    receive_email,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def care_address(db):
    return InboundAddressFactory(address="care@clinic.example")


@pytest.fixture
def maria_email(patient):
    return PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")


@pytest.fixture
def closed_thread(patient, care_address, maria_email):
    """A closed email communication with Maria whose last message is our outbound reply."""
    communication = CommunicationFactory(
        patient=patient, counterpart="maria@mail.example", inbound_address=care_address,
        status=Communication.Status.CLOSED, closed_at=timezone.now(),
    )  # fmt: skip
    MessageFactory(communication=communication, email_message_id="<first@mail.example>")
    MessageFactory(
        communication=communication, direction=Message.Direction.OUTBOUND, email_message_id="<out-1@careinbox.local>",
        in_reply_to="<first@mail.example>", references="<first@mail.example>",
        delivery_status=Message.DeliveryStatus.SENT, body_text="Yes, with food.",
    )  # fmt: skip
    return communication


def test_reply_to_an_outbound_message_id_joins_that_communication_and_reopens_it(closed_thread):
    raw = receive_email(
        build_email(body="Thanks!", in_reply_to="<out-1@careinbox.local>", references="<first@mail.example> <out-1@careinbox.local>")
    )  # fmt: skip
    closed_thread.refresh_from_db()
    assert raw.processed_at is not None and raw.error == ""
    assert raw.message.communication == closed_thread
    assert closed_thread.status == Communication.Status.OPEN
    assert closed_thread.last_message_preview == "Thanks!"
    assert Communication.objects.count() == 1


def test_reply_naming_the_thread_only_in_references_joins_it(closed_thread):
    raw = receive_email(build_email(sender="someone.else@mail.example", references="<first@mail.example>"))
    assert raw.message.communication == closed_thread
    assert raw.message.sender_address == "someone.else@mail.example"


def test_reply_into_a_linked_thread_stays_linked_whoever_writes(closed_thread):
    raw = receive_email(build_email(sender="stranger@mail.example", in_reply_to="<out-1@careinbox.local>"))
    communication = raw.message.communication
    assert (communication.patient_id, communication.is_unrecognized) == (closed_thread.patient_id, False)


def test_new_thread_from_a_known_address_is_a_new_linked_communication(closed_thread, patient):
    raw = receive_email(build_email(subject="New question", in_reply_to="<not-ours@elsewhere.example>"))
    communication = raw.message.communication
    assert communication != closed_thread
    assert (communication.channel, communication.patient, communication.is_unrecognized) == (
        Channel.EMAIL, patient, False,
    )  # fmt: skip
    assert communication.subject == "New question"
    assert communication.inbound_address.address == "care@clinic.example"
    assert communication.counterpart == "maria@mail.example"


def test_email_from_a_contact_links_the_patient_and_contact(patient, care_address):
    mother = ContactFactory(patient=patient, email="ana@mail.example")
    raw = receive_email(build_email(sender="Ana <ANA@mail.example>"))
    assert (raw.message.communication.patient, raw.message.communication.contact) == (patient, mother)


def test_email_from_an_unknown_sender_is_unrecognized(care_address):
    raw = receive_email(build_email(sender="stranger@mail.example"))
    communication = raw.message.communication
    assert communication.is_unrecognized and communication.patient is None
    assert list(communication.candidate_patients.all()) == []


def test_email_from_a_shared_address_is_unrecognized_with_the_candidates(patient, care_address):
    sibling = PatientFactory()
    PatientContactMethodFactory(patient=patient, kind="email", value="family@mail.example")
    PatientContactMethodFactory(patient=sibling, kind="email", value="family@mail.example")
    communication = receive_email(build_email(sender="family@mail.example")).message.communication
    assert communication.is_unrecognized
    assert set(communication.candidate_patients.all()) == {patient, sibling}


def test_follow_up_in_an_unrecognized_thread_joins_it(care_address):
    first = receive_email(build_email(sender="stranger@mail.example", message_id="<s1@mail.example>"))
    second = receive_email(build_email(sender="stranger@mail.example", in_reply_to="<s1@mail.example>"))
    assert second.message.communication == first.message.communication


def test_email_to_an_alias_is_auto_assigned_to_its_owner(nurse, maria_email):
    InboundAddressFactory(address="nora@clinic.example", owner=nurse)
    communication = receive_email(build_email(to="nora@clinic.example")).message.communication
    assert communication.assignee == nurse
    assert AuditEvent.objects.filter(
        communication=communication,
        action=AuditEvent.Action.ASSIGNMENT_CHANGED,
        actor_label="Auto-assignment",
    ).exists()


def test_unrecognized_email_to_an_alias_is_assigned_to_its_owner(nurse):
    InboundAddressFactory(address="nora@clinic.example", owner=nurse)
    communication = receive_email(
        build_email(sender="x@mail.example", to="nora@clinic.example")
    ).message.communication
    assert communication.is_unrecognized and communication.assignee == nurse


def test_auto_assignment_keeps_an_existing_assignee(closed_thread, nurse, lead):
    closed_thread.assignee = lead
    closed_thread.save()
    closed_thread.inbound_address.owner = nurse
    closed_thread.inbound_address.save()
    receive_email(build_email(in_reply_to="<out-1@careinbox.local>"))
    closed_thread.refresh_from_db()
    assert closed_thread.assignee == lead


def test_alias_owner_who_cannot_see_the_patient_is_not_auto_assigned(other_nurse, maria_email):
    InboundAddressFactory(address="otto@clinic.example", owner=other_nurse)
    communication = receive_email(build_email(to="otto@clinic.example")).message.communication
    assert communication.assignee is None


def test_envelope_recipient_picks_the_inbound_address_for_smtp(nurse, maria_email):
    InboundAddressFactory(address="nora@clinic.example", owner=nurse)
    raw = receive_email(
        build_email(to="undisclosed-recipients:;"),
        source=RawInbound.Source.SMTP,
        envelope={"mail_from": "maria@mail.example", "rcpt_tos": ["Nora@clinic.example"]},
    )
    assert raw.message.provider == Message.Provider.SMTP
    assert raw.message.communication.inbound_address.address == "nora@clinic.example"
    assert raw.message.communication.assignee == nurse


def test_auto_reply_is_stored_but_does_not_reopen(closed_thread):
    raw = receive_email(
        build_email(body="I am out of the office.", in_reply_to="<out-1@careinbox.local>",
                    headers={"Auto-Submitted": "auto-replied"})
    )  # fmt: skip
    closed_thread.refresh_from_db()
    assert raw.message.is_auto_reply
    assert raw.message.communication == closed_thread
    assert closed_thread.status == Communication.Status.CLOSED


@pytest.mark.parametrize("header", [{"X-Autoreply": "yes"}, {"Precedence": "auto_reply"}])
def test_other_auto_reply_markers_are_detected(closed_thread, header):
    raw = receive_email(build_email(in_reply_to="<out-1@careinbox.local>", headers=header))
    assert raw.message.is_auto_reply


def test_auto_submitted_no_is_an_ordinary_email(closed_thread):
    raw = receive_email(build_email(in_reply_to="<out-1@careinbox.local>", headers={"Auto-Submitted": "no"}))
    assert not raw.message.is_auto_reply


def _dsn(original_id: str, *, action: str = "failed") -> bytes:
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.mail.example>
To: care@careinbox.local
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{uuid.uuid4().hex}@mx.mail.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.mail.example

Final-Recipient: rfc822; maria@mail.example
Action: {action}
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--BOUNDARY
Content-Type: text/rfc822-headers

From: care@careinbox.local
To: maria@mail.example
Subject: Your results
Message-ID: {original_id}

--BOUNDARY--
""".replace("\n", "\r\n").encode()


def test_bounce_marks_the_outbound_message_it_answers_failed(closed_thread):
    outbound = closed_thread.messages.get(direction=Message.Direction.OUTBOUND)
    raw = receive_email(_dsn("<out-1@careinbox.local>"))
    outbound.refresh_from_db()
    closed_thread.refresh_from_db()
    assert outbound.delivery_status == Message.DeliveryStatus.FAILED
    assert "5.1.1" in outbound.delivery_error and "user unknown" in outbound.delivery_error
    assert raw.processed_at is not None and raw.message == outbound
    assert closed_thread.messages.count() == 2  # a bounce is not a new message
    assert closed_thread.status == Communication.Status.CLOSED


def test_delay_report_does_not_fail_the_message(closed_thread):
    outbound = closed_thread.messages.get(direction=Message.Direction.OUTBOUND)
    receive_email(_dsn("<out-1@careinbox.local>", action="delayed"))
    outbound.refresh_from_db()
    assert outbound.delivery_status == Message.DeliveryStatus.SENT


def test_mailer_daemon_notice_without_a_report_fails_the_message_it_quotes(closed_thread):
    outbound = closed_thread.messages.get(direction=Message.Direction.OUTBOUND)
    raw = build_email(
        sender="postmaster@mail.example", subject="Delivery failure",
        body="Could not deliver your message.\n\n> Message-ID: <out-1@careinbox.local>\n> Subject: Your results",
    )  # fmt: skip
    receive_email(raw)
    outbound.refresh_from_db()
    assert outbound.delivery_status == Message.DeliveryStatus.FAILED


def test_bounce_for_a_message_we_never_sent_changes_nothing(care_address):
    raw = receive_email(_dsn("<unknown@careinbox.local>"))
    assert raw.processed_at is not None and raw.message is None
    assert Message.objects.count() == 0 and Communication.objects.count() == 0


def test_html_only_email_is_sanitized_and_gets_derived_text(maria_email, care_address):
    raw = receive_email(
        build_email(
            body=None, html='<p>Hello <b>team</b></p><script>alert(1)</script><p onclick="x()">Bye</p>'
        )
    )
    message = raw.message
    assert "<script" not in message.body_html and "onclick" not in message.body_html
    assert "<b>team</b>" in message.body_html
    assert message.body_text == "Hello team\nBye"


def test_text_and_html_alternatives_are_both_kept(maria_email, care_address):
    message = receive_email(build_email(body="Plain hello", html="<p>Rich <i>hello</i></p>")).message
    assert message.body_text == "Plain hello"
    assert message.body_html == "<p>Rich <i>hello</i></p>"


def test_encoded_subject_and_sender_name_are_decoded(care_address):
    raw = build_email(
        sender="=?utf-8?q?Mar=C3=ADa_L=C3=B3pez?= <maria@mail.example>", subject="Cita ma\u00f1ana"
    )
    message = receive_email(raw).message
    assert message.sender_name == "María López"
    assert message.subject == "Cita mañana"


def test_attachment_and_inline_image_are_stored(maria_email, care_address):
    raw = build_email(attachments=[("results.pdf", b"%PDF-1.4 lab", "application", "pdf"),
                                   ("photo.png", b"\x89PNG fake", "image", "png")])  # fmt: skip
    message = receive_email(raw).message
    files = {a.filename: a for a in message.attachments.all()}
    assert set(files) == {"results.pdf", "photo.png"}
    assert files["results.pdf"].content_type == "application/pdf"
    with files["results.pdf"].file.open("rb") as fh:
        assert fh.read() == b"%PDF-1.4 lab"


def test_oversize_attachment_is_not_stored_and_the_message_says_so(settings, maria_email, care_address):
    settings.INBOUND_MAX_ATTACHMENT_BYTES = 1000
    original = build_email(attachments=[("scan.pdf", b"x" * 5000, "application", "pdf")])
    raw = receive_email(original)
    message = raw.message
    assert message.attachments.count() == 0
    assert "“scan.pdf”" in message.body_text and "larger than" in message.body_text
    assert bytes(raw.raw) == original  # the original is kept with the raw item


def test_attachment_of_a_refused_type_is_not_stored(maria_email, care_address):
    message = receive_email(
        build_email(attachments=[("run.exe", b"MZ", "application", "x-msdownload")])
    ).message
    assert message.attachments.count() == 0
    assert "“run.exe”" in message.body_text and "not accepted" in message.body_text


def test_text_declared_in_the_wrong_charset_is_tolerated(care_address):
    raw = (
        b"From: maria@mail.example\r\nTo: care@clinic.example\r\nSubject: caf\xe9\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nCaf\xe9 con leche\r\n"
    )
    message = receive_email(raw).message
    assert message.body_text == "Café con leche"


def test_unknown_charset_is_read_as_utf8(care_address):
    raw = (
        b"From: maria@mail.example\r\nTo: care@clinic.example\r\n"
        b"Content-Type: text/plain; charset=x-klingon\r\n\r\nHello \xc3\xa9\r\n"
    )
    assert receive_email(raw).message.body_text == "Hello é"


def test_the_same_message_id_twice_gives_one_message(maria_email, care_address):
    raw_bytes = build_email(message_id="<once@mail.example>")
    first = receive_email(raw_bytes)
    again = receive_email(raw_bytes)
    assert again.pk == first.pk  # the raw item itself is deduplicated
    # A second raw row for the same email (e.g. stored before the dedupe saw the first) files nothing new.
    other = RawInbound.objects.create(source=RawInbound.Source.EMAIL_WEBHOOK, raw=raw_bytes)
    process(other.pk)
    other.refresh_from_db()
    assert other.message == first.message
    assert Message.objects.filter(email_message_id="<once@mail.example>").count() == 1


def test_received_email_is_audited_with_the_sender(maria_email, care_address, patient):
    message = receive_email(build_email()).message
    event = AuditEvent.objects.get(action=AuditEvent.Action.MESSAGE_RECEIVED)
    assert event.actor is None and event.actor_label == "Maria Lopez <maria@mail.example>"
    assert (event.communication, event.patient, event.object_id) == (
        message.communication,
        patient,
        str(message.pk),
    )


def test_outbound_reply_threads_back_to_the_inbound_address(nurse, maria_email, care_address):
    from inbox.delivery import build_email as build_outbound
    from inbox.services import ReplyContent, send_reply

    inbound = receive_email(build_email(message_id="<q1@mail.example>")).message
    reply = send_reply(user=nurse, communication=inbound.communication, content=ReplyContent(body="Yes."))
    outbound = build_outbound(reply)
    assert outbound.reply_to == ["care@clinic.example"]
    assert outbound.extra_headers["In-Reply-To"] == "<q1@mail.example>"
    answer = receive_email(build_email(body="Great", in_reply_to=reply.email_message_id))
    assert answer.message.communication == inbound.communication


def test_email_to_an_unknown_recipient_is_still_filed(maria_email):
    message = receive_email(build_email(to="someone@elsewhere.example")).message
    assert message.communication.inbound_address is None
    assert message.recipient_address == "someone@elsewhere.example"


def test_user_is_not_needed_to_file_email(maria_email, care_address):
    UserFactory()  # unrelated users do not affect filing
    assert receive_email(build_email()).message.direction == Message.Direction.INBOUND
