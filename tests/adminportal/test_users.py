"""Users: list and search, create (with a password or an emailed invitation), edit role, regions, direct line and
email alias, deactivate (history kept, open assignments listed) and reactivate. Every change is audited."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from adminportal import services
from adminportal.models import User
from inbox.models import AuditEvent, Communication
from inbox.selectors import assignee_candidates, inbox_users
from tests.factories import (
    CommunicationFactory,
    InboundAddressFactory,
    RegionFactory,
    SendingLineFactory,
    UserFactory,
)


def changes(kind):
    return AuditEvent.objects.filter(action=AuditEvent.Action.SETTING_CHANGED, detail__change=kind)


def user_post(**overrides):
    data = {
        "first_name": "Priya",
        "last_name": "Raman",
        "email": "Priya.Raman@Clinic.example",
        "title": "MD",
        "time_zone": "America/Chicago",
        "role": "care-nurse",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_list_shows_active_users_with_their_role(client, administrator, nurse):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:users"))
    assert response.status_code == 200
    content = response.content.decode()
    assert 'data-user="nurse"' in content
    assert "Care Team Nurse" in content


def test_the_list_searches_names_usernames_and_emails(client, administrator, nurse, lead):
    client.force_login(administrator)
    content = client.get(reverse("adminportal:users"), {"q": "lena lead"}).content.decode()
    assert 'data-user="lead"' in content
    assert 'data-user="nurse"' not in content


def test_deactivated_users_are_listed_apart(client, administrator, nurse):
    nurse.is_active = False
    nurse.save()
    client.force_login(administrator)
    assert b'data-user="nurse"' not in client.get(reverse("adminportal:users")).content
    assert b'data-user="nurse"' in client.get(reverse("adminportal:users"), {"status": "deactivated"}).content


def test_creating_a_user_without_a_password_emails_an_invitation(
    client, administrator, django_capture_on_commit_callbacks
):
    east = RegionFactory(code="east", name="East Coast")
    line = SendingLineFactory(number="+15550100077")
    alias = InboundAddressFactory(address="priya@clinic.example")
    client.force_login(administrator)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("adminportal:user_new"),
            user_post(username="priya.raman", regions=[east.pk], direct_line=line.pk, email_alias=alias.pk),
        )

    assert response.status_code == 302
    user = User.objects.get(username="priya.raman")
    assert response["Location"] == reverse("adminportal:user_detail", args=[user.pk])
    assert (user.first_name, user.email, user.role, user.title, user.time_zone) == (
        "Priya",
        "priya.raman@clinic.example",
        "care-nurse",
        "MD",
        "America/Chicago",
    )
    assert not user.has_usable_password()
    assert list(user.regions.all()) == [east]
    line.refresh_from_db(), alias.refresh_from_db()
    assert line.owner == user and alias.owner == user
    assert changes("user.created").get().object_id == str(user.pk)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["priya.raman@clinic.example"]
    link = re.search(r"http://testserver(/admin-portal/invite/\S+)", mail.outbox[0].body).group(1)

    page = client.get(link, follow=True)
    assert b"Choose your password" in page.content
    client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "a-long-new-passphrase", "new_password2": "a-long-new-passphrase"},
    )
    user.refresh_from_db()
    assert user.check_password("a-long-new-passphrase")


def test_an_invitation_link_works_once(client, administrator, django_capture_on_commit_callbacks):
    client.force_login(administrator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("adminportal:user_new"), user_post(username="once"))
    link = re.search(r"http://testserver(/admin-portal/invite/\S+)", mail.outbox[0].body).group(1)
    client.logout()
    page = client.get(link, follow=True)
    client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "first-passphrase-1", "new_password2": "first-passphrase-1"},
    )
    assert b"This link no longer works" in client.get(link, follow=True).content


def test_creating_a_user_with_a_password_lets_them_sign_in_at_once(client, administrator):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:user_new"), user_post(username="ready", password="a-strong-passphrase")
    )
    assert response.status_code == 302
    assert User.objects.get(username="ready").check_password("a-strong-passphrase")
    assert mail.outbox == []


def test_a_weak_password_is_refused_and_nothing_is_created(client, administrator):
    client.force_login(administrator)
    response = client.post(reverse("adminportal:user_new"), user_post(username="weak", password="12345"))
    assert response.status_code == 200
    assert b"This password is too short" in response.content
    assert not User.objects.filter(username="weak").exists()
    assert not changes("user.created").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"username": "nurse"}, "The username “nurse” is taken."),
        ({"username": "bad name!"}, "Use only letters, digits and @ . + - _ in a username."),
        (
            {"username": "noemail", "email": ""},
            "Give an email address to send the invitation to, or set a password.",
        ),
        ({"username": "x", "email": "not-an-email"}, "Enter a valid email address."),
        ({"username": "x", "time_zone": "Mars/Olympus"}, "Select a valid choice."),
        ({"username": "x", "role": "ghost"}, "Select a valid choice."),
        ({"username": "x", "email": "NURSE@clinic.example"}, "Another user already has the email address"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(client, administrator, nurse, overrides, message):
    before = User.objects.count()
    client.force_login(administrator)
    response = client.post(reverse("adminportal:user_new"), user_post(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert User.objects.count() == before


def test_editing_keeps_the_users_own_email_and_refuses_another_users(client, administrator, nurse, lead):
    client.force_login(administrator)
    url = reverse("adminportal:user_detail", args=[nurse.pk])
    fields = {"first_name": "Nora", "last_name": "Nurse", "role": "care-nurse"}
    assert client.post(url, user_post(**fields, email=nurse.email)).status_code == 302
    response = client.post(url, user_post(**fields, email=lead.email.upper()))
    assert (
        response.status_code == 200
        and "Another user already has the email address" in response.content.decode()
    )
    nurse.refresh_from_db()
    assert nurse.email == "nurse@clinic.example"


def test_a_direct_line_owned_by_someone_else_is_not_offered(client, administrator, nurse):
    taken = SendingLineFactory(number="+15550100088", owner=nurse)
    client.force_login(administrator)
    response = client.post(reverse("adminportal:user_new"), user_post(username="x", direct_line=taken.pk))
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    taken.refresh_from_db()
    assert taken.owner == nurse


def test_editing_a_user_changes_role_regions_and_direct_line(client, administrator, nurse):
    old_line = SendingLineFactory(number="+15550100011", owner=nurse)
    new_line = SendingLineFactory(number="+15550100012")
    west = RegionFactory(code="west", name="West")
    client.force_login(administrator)

    response = client.post(
        reverse("adminportal:user_detail", args=[nurse.pk]),
        user_post(
            first_name="Nora",
            last_name="Nurse",
            email="nurse@clinic.example",
            role="team-lead",
            regions=[west.pk],
            direct_line=new_line.pk,
        ),
    )

    assert response.status_code == 302
    nurse.refresh_from_db()
    assert nurse.role == "team-lead"
    assert list(nurse.regions.all()) == [west]
    old_line.refresh_from_db(), new_line.refresh_from_db()
    assert old_line.owner is None and new_line.owner == nurse
    event = changes("user.updated").get()
    assert event.detail["fields"]["role"] == {"from": "care-nurse", "to": "team-lead"}
    assert event.detail["fields"]["direct_line"] == "+15550100012"


def test_saving_a_user_unchanged_writes_nothing(client, administrator, nurse):
    client.force_login(administrator)
    page = client.get(reverse("adminportal:user_detail", args=[nurse.pk]))
    form = page.context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, [])}
    response = client.post(reverse("adminportal:user_detail", args=[nurse.pk]), data, follow=True)
    assert b"Nothing changed." in response.content
    assert not changes("user.updated").exists()


def test_an_unknown_user_is_404(client, administrator):
    client.force_login(administrator)
    assert client.get(reverse("adminportal:user_detail", args=[99999])).status_code == 404


def test_deactivating_keeps_history_and_lists_open_assignments_for_reassignment(
    client, administrator, nurse, patient
):
    open_one = CommunicationFactory(patient=patient, assignee=nurse, subject="Refill question")
    CommunicationFactory(patient=patient, assignee=nurse, status=Communication.Status.CLOSED, subject="Old")
    client.force_login(administrator)

    response = client.post(reverse("adminportal:user_deactivate", args=[nurse.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("adminportal:user_deactivated", args=[nurse.pk])
    content = response.content.decode()
    assert 'data-testid="assignment-count">1<' in content
    assert reverse("careportal:communication", args=[open_one.pk]) in content
    assert "Refill question" in content and "Old" not in content
    nurse.refresh_from_db()
    assert not nurse.is_active
    assert User.objects.filter(pk=nurse.pk).exists()
    assert Communication.objects.get(pk=open_one.pk).assignee == nurse  # kept until someone reassigns it
    assert changes("user.deactivated").get().detail["open_assignments"] == 1


def test_a_deactivated_user_drops_out_of_assignee_lists_and_cannot_sign_in(
    client, administrator, nurse, patient
):
    communication = CommunicationFactory(patient=patient)
    assert nurse in assignee_candidates(communication)
    services.deactivate_user(actor=administrator, user=nurse)
    assert nurse not in inbox_users()
    assert nurse not in assignee_candidates(communication)
    assert not client.login(username="nurse", password="correct-horse-battery")


def test_deactivating_ends_the_users_session(client, administrator, nurse):
    client.force_login(nurse)
    assert client.get(reverse("careportal:home")).status_code == 200
    services.deactivate_user(actor=administrator, user=nurse)
    assert client.get(reverse("careportal:home")).status_code == 302


def test_an_administrator_cannot_deactivate_themselves(client, administrator):
    client.force_login(administrator)
    response = client.post(reverse("adminportal:user_deactivate", args=[administrator.pk]), follow=True)
    assert b"You cannot deactivate yourself" in response.content
    administrator.refresh_from_db()
    assert administrator.is_active


def test_reactivating_a_user(client, administrator, nurse):
    services.deactivate_user(actor=administrator, user=nurse)
    client.force_login(administrator)
    response = client.post(reverse("adminportal:user_reactivate", args=[nurse.pk]))
    assert response.status_code == 302
    nurse.refresh_from_db()
    assert nurse.is_active
    assert changes("user.reactivated").exists()


def test_resending_an_invitation(client, administrator, django_capture_on_commit_callbacks):
    invited = UserFactory(username="invited", email="invited@clinic.example")
    invited.set_unusable_password()
    invited.save()
    client.force_login(administrator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("adminportal:user_invite", args=[invited.pk]), follow=True)
    assert b"Emailed a new invitation to invited@clinic.example" in response.content
    assert mail.outbox[0].to == ["invited@clinic.example"]


def test_no_invitation_for_a_user_who_has_a_password(client, administrator, nurse):
    client.force_login(administrator)
    response = client.post(reverse("adminportal:user_invite", args=[nurse.pk]), follow=True)
    assert b"has already set a password" in response.content
    assert mail.outbox == []
