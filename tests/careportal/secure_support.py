"""Shared helpers of the secure message page tests: a secure message to a patient, its link, and a verified
session obtained the way a patient gets one (ask for a code, read it from the outbox, enter it)."""

import re

from django.core import mail
from django.urls import reverse

from inbox.models import Communication, Message
from inbox.secure import make_token
from tests.factories import (
    CommunicationFactory,
    MessageFactory,
    PatientContactMethodFactory,
    SecureMessageFactory,
)

ADDRESS = "maria.lopez@mail.example"
MASKED = "m•••@mail.example"
SECRET_TEXT = "Your lab results are back and look normal."
SUBJECT = "Lab results from Tuesday"
CODE = re.compile(r"verification code is (\d{6})")


def secure_conversation(
    nurse, patient, *, address: str = ADDRESS, status=Communication.Status.CLOSED
) -> Message:
    """A closed email communication: the patient asked, the nurse answered securely. Returns the secure message."""
    nurse.title = "RN"
    nurse.save(update_fields=["title"])
    PatientContactMethodFactory(patient=patient, kind="email", value=address)
    communication = CommunicationFactory(
        patient=patient, counterpart=address, subject=SUBJECT, status=status, assignee=nurse
    )
    MessageFactory(
        communication=communication,
        sender_name=patient.full_name,
        sender_address=address,
        body_text="Are my lab results back?",
        body_html="<p>Are my lab results back?</p>",
    )
    return SecureMessageFactory(communication=communication, author=nurse, body_text=SECRET_TEXT)


def url(name: str, link: Message | str, **kwargs) -> str:
    """A secure page URL for a message's link (a fresh token) or for a given token."""
    token = link if isinstance(link, str) else make_token(link)
    return reverse(f"secure:{name}", kwargs={"token": token, **kwargs})


def last_code(address: str = ADDRESS) -> str:
    sent = [m for m in mail.outbox if m.to == [address]]
    assert sent, "no code was emailed"
    return CODE.search(sent[-1].body).group(1)


def verify(client, message: Message) -> None:
    """Ask for a code, read it from the outbox, enter it: the client's session may now read the communication."""
    token = make_token(message)
    client.post(url("send_code", token))
    response = client.post(url("verify", token), {"code": last_code(message.recipient_address)})
    assert response.status_code == 302, response.content.decode()
    assert response["Location"] == url("thread", token)
