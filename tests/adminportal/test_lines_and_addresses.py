"""Sending lines (E.164 via phonenumbers, label, active, owner) and inbound email addresses (lower-cased, owner,
active). Bad input gets a clear error and changes nothing; every change is audited."""

import pytest
from django.urls import reverse

from inbox.models import AuditEvent, InboundAddress, SendingLine
from tests.factories import InboundAddressFactory, SendingLineFactory


def test_the_lines_page_lists_lines(client, administrator, nurse):
    SendingLineFactory(number="+15550100001", label="Main clinic")
    SendingLineFactory(number="+15550100002", owner=nurse)
    client.force_login(administrator)
    response = client.get(reverse("adminportal:lines"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Main clinic" in content and "+15550100002" in content and "Nora Nurse" in content


def test_adding_a_line_normalises_the_number_to_e164(client, administrator, nurse):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:lines"),
        {"number": "(617) 555-0100", "label": "Cardiology", "is_active": "on", "owner": nurse.pk},
    )
    assert response.status_code == 302
    line = SendingLine.objects.get()
    assert (line.number, line.label, line.is_active, line.owner) == (
        "+16175550100",
        "Cardiology",
        True,
        nurse,
    )
    event = AuditEvent.objects.get(detail__change="sending_line.created")
    assert event.detail["fields"]["number"] == {"from": None, "to": "+16175550100"}


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("call me", "“call me” is not a phone number. Enter it with the country code"),
        ("+1 555", "“+1 555” has the wrong number of digits"),
        ("", "This field is required."),
    ],
)
def test_a_bad_number_is_refused(client, administrator, number, message):
    client.force_login(administrator)
    response = client.post(reverse("adminportal:lines"), {"number": number, "is_active": "on"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SendingLine.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SETTING_CHANGED).exists()


def test_a_duplicate_number_is_refused(client, administrator):
    SendingLineFactory(number="+16175550100")
    client.force_login(administrator)
    response = client.post(reverse("adminportal:lines"), {"number": "+1 617 555 0100", "is_active": "on"})
    assert response.status_code == 200
    assert "+16175550100 is already a sending line." in response.content.decode()
    assert SendingLine.objects.count() == 1


def test_editing_a_line(client, administrator):
    line = SendingLineFactory(number="+15550100001", label="Old")
    client.force_login(administrator)
    assert client.get(reverse("adminportal:line_edit", args=[line.pk])).status_code == 200
    response = client.post(
        reverse("adminportal:line_edit", args=[line.pk]), {"number": "+15550100001", "label": "Main"}
    )
    assert response.status_code == 302
    line.refresh_from_db()
    assert line.label == "Main" and not line.is_active
    changed = AuditEvent.objects.get(detail__change="sending_line.updated").detail["fields"]
    assert changed == {"label": {"from": "Old", "to": "Main"}, "is_active": {"from": True, "to": False}}


def test_saving_an_unchanged_line_writes_nothing(client, administrator):
    line = SendingLineFactory(number="+15550100001", label="Main")
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:line_edit", args=[line.pk]),
        {"number": "+15550100001", "label": "Main", "is_active": "on"},
        follow=True,
    )
    assert b"Nothing changed." in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SETTING_CHANGED).exists()


def test_an_unknown_line_is_404(client, administrator):
    client.force_login(administrator)
    assert client.get(reverse("adminportal:line_edit", args=[999])).status_code == 404


def test_adding_an_address_lower_cases_it(client, administrator, nurse):
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:addresses"),
        {"address": "  Nora.Alias@Clinic.Example ", "label": "Nora", "is_active": "on", "owner": nurse.pk},
    )
    assert response.status_code == 302
    address = InboundAddress.objects.get()
    assert (address.address, address.owner) == ("nora.alias@clinic.example", nurse)
    assert AuditEvent.objects.filter(detail__change="inbound_address.created").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("not an email", "Enter a valid email address."),
        ("CARE@clinic.example", "care@clinic.example is already an inbound address."),
    ],
)
def test_a_bad_address_is_refused(client, administrator, address, message):
    InboundAddressFactory(address="care@clinic.example")
    client.force_login(administrator)
    response = client.post(reverse("adminportal:addresses"), {"address": address, "is_active": "on"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert InboundAddress.objects.count() == 1


def test_editing_an_address_owner(client, administrator, nurse):
    address = InboundAddressFactory(address="care@clinic.example")
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:address_edit", args=[address.pk]),
        {"address": "care@clinic.example", "is_active": "on", "owner": nurse.pk},
    )
    assert response.status_code == 302
    address.refresh_from_db()
    assert address.owner == nurse


def test_a_deactivated_user_cannot_be_made_an_owner(client, administrator, nurse):
    nurse.is_active = False
    nurse.save()
    client.force_login(administrator)
    response = client.post(
        reverse("adminportal:lines"), {"number": "+15550100001", "is_active": "on", "owner": nurse.pk}
    )
    assert response.status_code == 200
    assert not SendingLine.objects.exists()
