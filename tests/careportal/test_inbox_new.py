"""Starting a communication from the Inbox: an SMS on a chosen sending line or an email, to a visible patient."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent, Channel, Communication, Message
from tests.factories import PatientContactMethodFactory, PatientFactory, SendingLineFactory

HX = {"HTTP_HX_REQUEST": "true"}
NEW = "careportal:communication_new"


@pytest.fixture
def reachable(patient):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030", label="mobile")
    PatientContactMethodFactory(patient=patient, kind="email", value="maria@mail.example")
    return patient


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100002", label="Cardiology")


def test_the_dialog_searches_visible_patients_only(client, nurse, reachable):
    PatientFactory(first_name="Maria", last_name="Hidden")
    client.force_login(nurse)
    dialog = client.get(reverse(NEW), **HX)
    assert dialog.status_code == 200 and dialog.content.decode().lstrip().startswith("<dialog")
    results = client.get(reverse(NEW), {"q": "maria"}, **HX)
    assert results.context["results"] == [reachable]
    assert b"Hidden" not in results.content
    assert client.get(reverse(NEW), {"q": "(555) 010-2030"}, **HX).context["results"] == [reachable]


def test_picking_a_patient_shows_their_numbers_addresses_and_the_sending_lines(
    client, nurse, reachable, line
):
    client.force_login(nurse)
    response = client.get(reverse(NEW), {"patient": reachable.pk}, HTTP_HX_TARGET="new-body", **HX)
    html = response.content.decode()
    assert "<dialog" not in html
    assert "+15550102030 (mobile)" in html and "maria@mail.example" in html
    assert "Cardiology · +15550100002" in html


def test_a_patient_the_user_may_not_see_cannot_be_picked(client, nurse, db):
    hidden = PatientFactory(last_name="Hidden")
    client.force_login(nurse)
    response = client.get(reverse(NEW), {"patient": hidden.pk}, **HX)
    assert response.status_code == 404 and b"Hidden" not in response.content


def test_a_new_sms_goes_out_on_the_chosen_line_and_opens_the_conversation(client, nurse, reachable, line):
    client.force_login(nurse)
    current = "http://testserver/inbox/my/sent/?status=open"
    data = {
        "patient": reachable.pk,
        "channel": "sms",
        "phone": "+15550102030",
        "sending_line": line.pk,
        "body": "Please call us back.",
        "close": "0",
    }
    response = client.post(reverse(NEW), data, HTTP_HX_CURRENT_URL=current, **HX)
    assert response.status_code == 200
    created = Communication.objects.get(patient=reachable)
    assert (created.channel, created.sending_line, created.assignee, created.status) == (
        Channel.SMS,
        line,
        nurse,
        Communication.Status.OPEN,
    )
    assert created.messages.get().body_text == "Please call us back."
    assert response["HX-Retarget"] == "#conversation-pane"
    assert response["HX-Push-Url"] == f"/inbox/my/sent/?status=open&c={created.pk}"
    assert '"inbox:listchanged"' in response["HX-Trigger"]
    assert "Cardiology" in response.content.decode()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.COMMUNICATION_CREATED, communication=created
    ).exists()


def test_a_new_email_has_a_subject_and_closes_by_default(client, nurse, reachable):
    client.force_login(nurse)
    data = {
        "patient": reachable.pk,
        "channel": "email",
        "email": "maria@mail.example",
        "subject": "Your visit",
        "body": "See you soon.",
    }
    assert client.post(reverse(NEW), data, **HX).status_code == 200
    created = Communication.objects.get(patient=reachable)
    assert (created.channel, created.subject, created.status) == (
        Channel.EMAIL,
        "Your visit",
        Communication.Status.CLOSED,
    )
    assert created.messages.get().direction == Message.Direction.OUTBOUND


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"channel": "sms", "phone": "+15550102030", "body": "Hi"},
            "Pick the sending line the SMS goes out from.",
        ),
        ({"channel": "email", "email": "maria@mail.example", "body": "Hi"}, "Give the email a subject."),
        ({"channel": "email", "email": "other@mail.example", "subject": "S", "body": "Hi"}, "no such email"),
        ({"channel": "fax", "body": "Hi"}, "Select a valid choice."),
    ],
)
def test_a_new_communication_is_refused_clearly_and_creates_nothing(client, nurse, reachable, data, message):
    client.force_login(nurse)
    response = client.post(reverse(NEW), {"patient": reachable.pk, **data}, **HX)
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#new-body"
    assert message in response.content.decode()
    assert not Communication.objects.exists()


def test_a_new_communication_to_a_patient_the_user_may_not_see_is_refused(client, nurse, line, db):
    hidden = PatientFactory(last_name="Hidden")
    PatientContactMethodFactory(patient=hidden, kind="phone", value="+15550107777")
    client.force_login(nurse)
    data = {
        "patient": hidden.pk,
        "channel": "sms",
        "phone": "+15550107777",
        "sending_line": line.pk,
        "body": "Hi",
    }
    response = client.post(reverse(NEW), data, **HX)
    assert response.status_code == 404
    assert b"Hidden" not in response.content
    assert not Communication.objects.exists()


def test_without_htmx_the_new_dialog_opens_on_the_full_page(client, nurse):
    client.force_login(nurse)
    response = client.get(reverse(NEW))
    html = response.content.decode()
    assert "<!doctype html>" in html and 'data-testid="new-dialog"' in html


def test_without_htmx_a_new_sms_redirects_to_it(client, nurse, reachable, line):
    client.force_login(nurse)
    data = {
        "patient": reachable.pk,
        "channel": "sms",
        "phone": "+15550102030",
        "sending_line": line.pk,
        "body": "Hi",
    }
    response = client.post(reverse(NEW), data)
    created = Communication.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?c={created.pk}")


def test_new_rejects_other_methods(client, nurse):
    client.force_login(nurse)
    assert client.put(reverse(NEW), **HX).status_code == 405


def test_new_is_404_without_inbox(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse(NEW), **HX).status_code == 404


def test_new_needs_sign_in(client, db):
    assert client.get(reverse(NEW))["Location"].startswith(reverse("login"))
