"""Who may send from a sending line (django-guardian ``send_from_line``), managed on the line's Admin Portal page:
add and remove senders, each change audited; bad input gets a clear error and changes nothing; administrators only."""

import pytest
from django.urls import reverse

from adminportal.services import line_senders
from inbox.models import AuditEvent, SendingLineUserObjectPermission
from inbox.selectors import active_sending_lines
from tests.factories import SendingLineFactory, UserFactory


@pytest.fixture
def line(db):
    return SendingLineFactory(number="+15550100001", label="Cardiology")


def _add(client, line, user_id):
    return client.post(reverse("adminportal:line_sender_add", args=[line.pk]), {"user": user_id}, follow=True)


def _remove(client, line, user):
    return client.post(reverse("adminportal:line_sender_remove", args=[line.pk, user.pk]), follow=True)


def _sender_events():
    return AuditEvent.objects.filter(detail__change__startswith="sending_line.sender_")


def test_a_line_without_senders_says_everyone_may_send(client, administrator, line):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:line_edit", args=[line.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-testid="senders-everyone"' in content and "Everyone with Inbox access" in content
    assert 'data-testid="add-sender"' in content


def test_adding_a_sender_restricts_the_line_to_them(client, administrator, nurse, other_nurse, line):
    client.force_login(administrator)

    response = _add(client, line, nurse.pk)

    assert response.redirect_chain[-1][0].endswith(f"/lines/{line.pk}/#senders")
    content = response.content.decode()
    assert "Nora Nurse may now send from Cardiology." in content
    assert f'data-sender="{nurse.username}"' in content and "Everyone with Inbox access" not in content
    assert list(line_senders(line)) == [nurse]
    assert line in active_sending_lines(nurse)
    assert line not in active_sending_lines(other_nurse)
    event = _sender_events().get()
    assert event.action == AuditEvent.Action.SETTING_CHANGED and event.actor == administrator
    assert event.object_type == "inbox.sendingline" and event.object_id == str(line.pk)
    assert event.detail == {
        "change": "sending_line.sender_added",
        "line": "+15550100001",
        "user": "nurse",
        "restricted": True,
    }


def test_adding_a_second_sender_keeps_the_first(client, administrator, nurse, other_nurse, line):
    client.force_login(administrator)
    _add(client, line, nurse.pk)
    _add(client, line, other_nurse.pk)
    assert set(line_senders(line)) == {nurse, other_nurse}
    assert _sender_events().filter(detail__restricted=False).count() == 1


def test_adding_a_sender_twice_changes_nothing(client, administrator, nurse, line):
    client.force_login(administrator)
    _add(client, line, nurse.pk)
    response = _add(client, line, nurse.pk)
    assert "Nora Nurse could already send from Cardiology." in response.content.decode()
    assert SendingLineUserObjectPermission.objects.count() == 1
    assert _sender_events().count() == 1


def test_removing_a_sender(client, administrator, nurse, other_nurse, line):
    client.force_login(administrator)
    _add(client, line, nurse.pk)
    _add(client, line, other_nurse.pk)

    response = _remove(client, line, nurse)

    assert "Nora Nurse may no longer send from Cardiology." in response.content.decode()
    assert list(line_senders(line)) == [other_nurse]
    assert line not in active_sending_lines(nurse)
    event = _sender_events().get(detail__change="sending_line.sender_removed")
    assert event.detail["user"] == "nurse" and event.detail["open_to_everyone"] is False


def test_removing_the_last_sender_opens_the_line_to_everyone(client, administrator, nurse, other_nurse, line):
    client.force_login(administrator)
    _add(client, line, nurse.pk)

    response = _remove(client, line, nurse)

    content = response.content.decode()
    assert "everyone with Inbox access may use it again" in content
    assert "Everyone with Inbox access" in content
    assert line in active_sending_lines(other_nurse)
    assert (
        _sender_events().get(detail__change="sending_line.sender_removed").detail["open_to_everyone"] is True
    )


def test_removing_someone_who_is_not_a_sender_changes_nothing(client, administrator, nurse, line):
    client.force_login(administrator)
    response = _remove(client, line, nurse)
    assert "Nora Nurse was not among the senders of Cardiology." in response.content.decode()
    assert not _sender_events().exists()


def test_the_owner_is_shown_as_always_allowed(client, administrator, nurse, other_nurse):
    line = SendingLineFactory(label="Nora direct", owner=nurse)
    client.force_login(administrator)
    _add(client, line, other_nurse.pk)
    content = client.get(reverse("adminportal:line_edit", args=[line.pk])).content.decode()
    assert "Nora Nurse owns this direct line and may always send from it." in content


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("999999", "That user does not exist. Nothing changed."),
        ("not-a-number", "That user does not exist. Nothing changed."),
        ("", "Choose the person who may send from this line. Nothing changed."),
    ],
)
def test_an_unknown_user_is_refused(client, administrator, nurse, line, value, message):
    client.force_login(administrator)
    _add(client, line, nurse.pk)

    response = _add(client, line, value)

    assert message in response.content.decode()
    assert list(line_senders(line)) == [nurse]
    assert _sender_events().count() == 1


def test_a_deactivated_user_is_refused(client, administrator, line):
    gone = UserFactory(
        username="gone", first_name="Gina", last_name="Gone", role="care-nurse", is_active=False
    )
    client.force_login(administrator)

    response = _add(client, line, gone.pk)

    assert "Gina Gone is deactivated; reactivate them first. Nothing changed." in response.content.decode()
    assert not SendingLineUserObjectPermission.objects.exists()
    assert not _sender_events().exists()


def test_deactivated_users_are_not_offered(client, administrator, line):
    UserFactory(username="gone", first_name="Gina", last_name="Gone", is_active=False)
    client.force_login(administrator)
    content = client.get(reverse("adminportal:line_edit", args=[line.pk])).content.decode()
    assert "Gina Gone" not in content


def test_an_unknown_line_or_user_is_404(client, administrator, nurse, line):
    client.force_login(administrator)
    assert (
        client.post(reverse("adminportal:line_sender_add", args=[999999]), {"user": nurse.pk}).status_code
        == 404
    )
    url = reverse("adminportal:line_sender_remove", args=[line.pk, 999999])
    assert client.post(url).status_code == 404


@pytest.mark.parametrize("who", ["nurse", "lead", "designer", "outsider"])
def test_non_administrators_are_refused(client, request, administrator, line, nurse, who):
    person = request.getfixturevalue(who)
    client.force_login(person)

    add = client.post(reverse("adminportal:line_sender_add", args=[line.pk]), {"user": person.pk})
    remove = client.post(reverse("adminportal:line_sender_remove", args=[line.pk, person.pk]))

    assert (add.status_code, remove.status_code) == (403, 403)
    assert not SendingLineUserObjectPermission.objects.exists()
    assert not _sender_events().exists()


def test_a_non_administrator_cannot_remove_a_sender(client, administrator, nurse, other_nurse, line):
    client.force_login(administrator)
    _add(client, line, nurse.pk)
    client.force_login(other_nurse)
    assert client.post(reverse("adminportal:line_sender_remove", args=[line.pk, nurse.pk])).status_code == 403
    assert list(line_senders(line)) == [nurse]


def test_signed_out_visitors_go_to_sign_in(client, nurse, line):
    response = client.post(reverse("adminportal:line_sender_add", args=[line.pk]), {"user": nurse.pk})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not SendingLineUserObjectPermission.objects.exists()


def test_the_wrong_method_is_refused(client, administrator, nurse, line):
    client.force_login(administrator)
    assert client.get(reverse("adminportal:line_sender_add", args=[line.pk])).status_code == 405
    assert client.get(reverse("adminportal:line_sender_remove", args=[line.pk, nurse.pk])).status_code == 405
