"""Secure email in real browsers: a nurse sends a secure reply; the patient, in a browser context of their own,
opens the link from the notice email, asks for a code, reads it from the email, enters it, reads the message,
downloads the attachment and replies; the reply reopens the communication and shows in the nurse's Inbox."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from inbox.models import Communication, Message
from inbox.services import ReplyContent, send_reply
from tests.e2e.conftest import SCREENSHOTS, sign_in_at
from tests.factories import CommunicationFactory, DocumentFactory, MessageFactory, PatientContactMethodFactory

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "maria.lopez@mail.example"
SECRET = "Your lab results are back and everything looks normal."
CODE = re.compile(r"verification code is (\d{6})")


@pytest.fixture(autouse=True)
def _outbox(settings, live_server):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = live_server.url


def emails_to(address: str):
    return [m for m in mail.outbox if m.to == [address]]


@pytest.fixture
def lab_results(nurse, patient):
    """Maria asked about her lab results; the conversation is assigned to the nurse."""
    nurse.title = "RN"
    nurse.save(update_fields=["title"])
    PatientContactMethodFactory(patient=patient, kind="email", value=ADDRESS)
    communication = CommunicationFactory(
        patient=patient, counterpart=ADDRESS, subject="Lab results from Tuesday", assignee=nurse
    )
    MessageFactory(
        communication=communication,
        sender_name=patient.full_name,
        sender_address=ADDRESS,
        body_text="Hi Nora, are my lab results from Tuesday back yet?",
        body_html="<p>Hi Nora, are my lab results from Tuesday back yet?</p>",
    )
    return communication


def test_patient_reads_a_secure_message_with_a_one_time_code_and_replies(
    page, browser, live_server, nurse, patient, lab_results, screenshot
):
    # The nurse answers securely, attaching the report: the patient is emailed a link, never the content.
    report = DocumentFactory(patient=patient, name="lab-results.pdf")
    body = f"Hi Maria,\n\n{SECRET} Dr. Patel will go through them with you at your next visit."
    send_reply(
        user=nurse,
        communication=lab_results,
        content=ReplyContent(body=body, is_secure=True, document_ids=(report.pk,)),
    )
    lab_results.refresh_from_db()
    assert lab_results.status == Communication.Status.CLOSED
    (notice,) = emails_to(ADDRESS)
    assert SECRET not in notice.body and not notice.attachments
    link = re.search(r"https?://\S+/secure/\S+/", notice.body).group(0)

    # The patient opens the link in their own browser context and asks for a code.
    page.goto(link)
    expect(page.get_by_role("heading", name="You have a secure message")).to_be_visible()
    expect(page.get_by_test_id("masked-address")).to_have_text("m•••@mail.example")
    expect(page.locator("nav.sidebar")).to_have_count(0)
    expect(page.get_by_text(SECRET)).to_have_count(0)
    screenshot("secure-1-start")
    page.get_by_role("button", name="Send me a code").click()

    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Code sent to m•••@mail.example")
    code_email = emails_to(ADDRESS)[-1]
    assert SECRET not in code_email.body
    code = CODE.search(code_email.body).group(1)
    screenshot("secure-2-code")

    # A mistyped code is refused with the attempts left; the right one opens the thread.
    page.get_by_label("Verification code").fill(f"{(int(code) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Verify and read message").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not correct. You have 4 more attempts.")
    screenshot("secure-3-wrong-code")
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify and read message").click()

    expect(page.get_by_role("heading", name="Lab results from Tuesday")).to_be_visible()
    thread = page.get_by_role("list", name="Messages")
    expect(thread).to_contain_text("Hi Nora, are my lab results from Tuesday back yet?")
    expect(thread).to_contain_text(SECRET)
    expect(thread).to_contain_text("Nora, RN")
    screenshot("secure-4-thread")

    with page.expect_download() as download:
        thread.get_by_role("link", name=re.compile("lab-results.pdf")).click()
    assert download.value.suggested_filename == "lab-results.pdf"

    page.get_by_label("Reply to your care team").fill(
        "Thank you, Nora! Should I keep taking the iron tablets?"
    )
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status")).to_contain_text("Your reply was sent securely to your care team.")
    expect(thread).to_contain_text("Should I keep taking the iron tablets?")
    expect(page.get_by_label("Reply to your care team")).to_have_value("")
    screenshot("secure-5-replied")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("secure-6-thread-mobile")

    # The reply is a secure inbound message of the same communication, which is open again.
    reply = Message.objects.get(communication=lab_results, provider=Message.Provider.SECURE_PORTAL)
    assert reply.direction == Message.Direction.INBOUND and reply.is_secure
    assert reply.body_text == "Thank you, Nora! Should I keep taking the iron tablets?"
    lab_results.refresh_from_db()
    assert lab_results.status == Communication.Status.OPEN

    # The nurse, in her own browser context, sees the reply in the Inbox as a secure message.
    staff = browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-US")
    try:
        inbox = staff.new_page()
        sign_in_at(inbox, live_server.url, "nurse")
        inbox.goto(f"{live_server.url}/inbox/my/assigned/?c={lab_results.pk}")
        received = inbox.get_by_role("log", name="Messages").locator(f"#message-{reply.pk}")
        expect(received).to_contain_text("Should I keep taking the iron tablets?")
        expect(received).to_contain_text("Secure message")
    finally:
        staff.close()


def test_an_invalid_link_shows_only_a_friendly_notice(browser, live_server):
    # A context of its own: the 404 document is expected here, not a console error to fail on.
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-US")
    try:
        page = context.new_page()
        response = page.goto(f"{live_server.url}/secure/not-a-valid-link/")
        assert response.status == 404
        expect(page.get_by_role("heading", name="This link is not valid or has expired")).to_be_visible()
        expect(page.get_by_role("button")).to_have_count(0)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "secure-0-invalid-link.png"), full_page=True)
    finally:
        context.close()
