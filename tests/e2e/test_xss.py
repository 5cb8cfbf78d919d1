"""XSS corpus in a real browser: every payload of ``tests/security/xss_payloads.py`` arrives as inbound email HTML
(subject and body), SMS text, chat text, patient names, message template names and bodies, and attachment file
names, through the ingestion pipeline, the chat service, ``send_reply`` and factories; then Chromium renders every
place staff and patients see them — inbox rows, conversations (and a template inserted into the reply editor),
patient panels, the patient list, communication centers, the secure message page, the chat page and the Designer's
template preview — and no payload may run: no dialog opens, ``window.__xss`` stays unset, and the page holds none of
the elements or attributes a payload would need to run.

The pages are served without the Content-Security-Policy here, so escaping and sanitising are proven on their own
(the policy is the second layer, tested in tests/security/test_headers.py and by every other browser test)."""

import re
import uuid

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from careportal.chat import make_chat_token, open_chat, submit_chat_message
from designer.models import MessageTemplate
from designer.services import open_draft
from inbox.models import Channel, Communication
from inbox.sanitize import clean_html, html_to_text
from inbox.services import ReplyContent, send_reply
from tests.factories import (
    CommunicationFactory,
    DocumentFactory,
    InboundAddressFactory,
    MessageFactory,
    MessageTemplateFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
)
from tests.inbox.ingest_support import build_email, receive_email, receive_sms
from tests.security.xss_payloads import PAYLOADS

MARIA_EMAIL = "maria.lopez@mail.example"
MARIA_PHONE = "+15550100001"
LINE = "+15550109999"
CODE = re.compile(r"verification code is (\d{6})")

# What a payload would need in the DOM to run (the product's own markup has none of it).
DANGEROUS = ", ".join(
    [
        "script:not([src])",
        "script[src^='data:' i]",
        "iframe",
        "object",
        "embed",
        "base",
        "meta[http-equiv]",
        "link[rel=import]",
        "a[href^='javascript:' i]",
        "a[href^='data:' i]",
        "a[href^='vbscript:' i]",
        "a[href*='script:' i]",
        "form[action^='javascript:' i]",
        "[style*='expression' i]",
        "[style*='javascript' i]",
        "[hx-on\\:click]",
        "[hx-on\\:\\:load]",
        "[hx-get='/accounts/logout/']",
        "main [autofocus][onfocus]",
    ]
    + [
        f"[{name}]"
        for name in (
            "onerror",
            "onload",
            "onclick",
            "onfocus",
            "onmouseover",
            "ontoggle",
            "onbegin",
            "onstart",
            "onpointerenter",
        )
    ]
)

CHECK = (
    "selector => ({flag: window.__xss || 0, bad: Array.from(document.querySelectorAll(selector))"
    ".map(e => e.outerHTML.slice(0, 160))})"
)


@pytest.fixture(autouse=True)
def _no_csp_and_local_mail(settings, live_server):
    settings.CONTENT_SECURITY_POLICY = {}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = live_server.url
    settings.INBOUND_EMAIL_SECRET = "test-email-secret"
    settings.TWILIO_AUTH_TOKEN = "test-twilio-token"
    settings.TWILIO_ACCOUNT_SID = "ACtest"


@pytest.fixture
def world(lead, designer, patient, published_config):
    """Maria Lopez (an email thread, an SMS conversation and a chat, all made of payloads, with a secure reply and a
    chat reply carrying payload-named files) and one patient per payload, named with it, who emailed it."""
    version, _ = published_config
    InboundAddressFactory(address="care@clinic.example")
    SendingLineFactory(number=LINE)
    PatientContactMethodFactory(patient=patient, kind="email", value=MARIA_EMAIL)
    PatientContactMethodFactory(patient=patient, kind="phone", value=MARIA_PHONE)

    people = []
    with transaction.atomic():  # one commit: the live server's SQLite file syncs on every commit
        # Two payloads per patient, as first and last name: every payload is a name, in half the page loads.
        for i, payload in enumerate(PAYLOADS):
            if i % 2:
                continue
            person = PatientFactory(first_name=payload[:80], last_name=(PAYLOADS[i + 1 :] or ["Xss"])[0][:80])
            body_html = clean_html(payload)  # as ingestion stores it (Maria's thread below is ingested)
            communication = CommunicationFactory(
                patient=person,
                channel=Channel.EMAIL,
                counterpart=f"p{i}@mail.example",
                subject=payload,
                last_message_at=timezone.now(),
                last_message_preview=html_to_text(body_html)[:200] or payload[:200],
            )
            MessageFactory(
                communication=communication, subject=payload, body_text=payload, body_html=body_html
            )
            people.append(person)

    thread_id = "<xss-thread@mail.example>"
    receive_email(build_email(sender=MARIA_EMAIL, subject="Lab results", message_id=thread_id, body="Hello"))
    for payload in PAYLOADS:
        receive_email(
            build_email(
                sender=MARIA_EMAIL, subject=payload, in_reply_to=thread_id, body=payload, html=payload
            )
        )
    # SMS and chat: the first message through the real pipeline (ingestion, the chat service), the others stored as
    # the pipeline stores them (plain text, escaped wherever shown), which keeps the test fast.
    receive_sms(sender=MARIA_PHONE, to=LINE, body=PAYLOADS[0])
    submit_chat_message(
        session=open_chat(make_chat_token(patient)), client_id=str(uuid.uuid4()), text=PAYLOADS[0]
    )
    email = Communication.objects.get(patient=patient, channel=Channel.EMAIL)
    sms = Communication.objects.get(patient=patient, channel=Channel.SMS)
    chat = Communication.objects.get(patient=patient, channel=Channel.CHAT)
    with transaction.atomic():
        for payload in PAYLOADS[1:]:
            MessageFactory(communication=sms, body_text=payload, sender_address=MARIA_PHONE)
            MessageFactory(communication=chat, body_text=payload, sender_name=patient.full_name)
    assert email.messages.count() == len(PAYLOADS) + 1
    assert sms.messages.count() == len(PAYLOADS)
    assert chat.messages.filter(direction="in").count() == len(PAYLOADS)

    with transaction.atomic():
        documents = tuple(DocumentFactory(patient=patient, name=payload).pk for payload in PAYLOADS)
        MessageTemplateFactory(version=version, key="xss-all", name="XSS probe", body="\n\n".join(PAYLOADS))
        for i, payload in enumerate(PAYLOADS):
            MessageTemplateFactory(version=version, key=f"xss-{i}", name=payload[:120], body=payload)
    everything = "\n\n".join(PAYLOADS)
    send_reply(
        user=lead,
        communication=email,
        content=ReplyContent(body=everything, is_secure=True, document_ids=documents),
    )
    send_reply(
        user=lead,
        communication=chat,
        content=ReplyContent(body=everything, document_ids=documents),
        close=False,
    )

    open_draft(user=designer)
    return {"email": email, "sms": sms, "chat": chat, "people": people}


def assert_nothing_ran(page, where: str, dialogs: list[str], *, settle: int = 150) -> None:
    page.wait_for_timeout(settle)  # handlers of failed loads and autofocus fire just after the page settles
    result = page.evaluate(CHECK, DANGEROUS)
    assert not dialogs, f"{where}: a dialog opened: {dialogs}"
    assert not result["flag"], f"{where}: window.__xss was set"
    assert not result["bad"], f"{where}: live markup from a payload: {result['bad']}"


def listen(page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def new_patient_page(browser):
    """A patient's own browser (no staff session); its live-chat socket is answered by Playwright."""
    context = browser.new_context()
    page = context.new_page()
    page.route_web_socket(re.compile(r"/ws/"), lambda ws: None)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return context, page, problems


def test_no_payload_runs_anywhere_staff_or_patients_see_it(page, browser, live_server, world, sign_in):
    dialogs = listen(page)
    base = live_server.url
    sign_in("lead")

    # Inbox rows: every payload as a patient name, an email subject and a preview (Load more until the end).
    page.goto(f"{base}/inbox/all-patients/directed/?channel=email")
    rows = page.get_by_role("list", name="Communications in Directed")
    while page.get_by_role("button", name="Load more").count():
        page.get_by_role("button", name="Load more").click()
        page.wait_for_load_state("networkidle")
    expect(rows.locator("li[id^=row-]")).to_have_count(len(world["people"]) + 1)
    expect(rows).to_contain_text(PAYLOADS[0][:20])
    assert_nothing_ran(page, "inbox rows", dialogs)

    # Conversations: email HTML with the secure reply and its files, SMS text, chat text and files.
    for key in ("email", "sms", "chat"):
        page.goto(f"{base}/inbox/all-patients/directed/?c={world[key].pk}")
        expect(page.get_by_role("log", name="Messages")).to_contain_text("window.__xss=1")
        assert_nothing_ran(page, f"{key} conversation", dialogs)

    # The template list of the reply box, and the template inserted into the editor.
    page.goto(f"{base}/inbox/all-patients/directed/?c={world['email'].pk}")
    page.get_by_label("Use a template").click()
    page.get_by_role("button", name=re.compile("XSS probe")).click()
    editor = page.get_by_role("textbox", name=re.compile("Email to Maria Lopez"))
    expect(editor).to_contain_text("window.__xss=1")
    assert_nothing_ran(page, "template inserted into the reply editor", dialogs)

    # Patient panels (names, contact details), the patient list and communication centers.
    for person in world["people"]:
        page.goto(f"{base}/patients/{person.pk}/panel/", wait_until="domcontentloaded")
        assert_nothing_ran(page, f"panel of patient {person.pk}", dialogs, settle=40)
    for number in (1, 2):
        page.goto(f"{base}/patients/?page={number}")
        assert_nothing_ran(page, f"patient list page {number}", dialogs)
    expect(page.get_by_role("main")).to_contain_text("window.__xss=1")
    for person in [world["email"].patient, *world["people"][:5]]:
        page.goto(f"{base}/patients/{person.pk}/communications/")
        assert_nothing_ran(page, f"communication center of patient {person.pk}", dialogs)
    page.goto(f"{base}/patients/{world['email'].patient.pk}/")
    assert_nothing_ran(page, "patient profile", dialogs)

    # Designer: the draft's template list, the template page with its preview, and a live preview.
    page.context.clear_cookies()
    sign_in("designer")
    page.goto(f"{base}/designer/draft/")
    assert_nothing_ran(page, "designer draft", dialogs)
    page.goto(f"{base}/designer/draft/templates/xss-all/")
    expect(page.get_by_test_id("template-preview")).to_contain_text("window.__xss=1")
    assert_nothing_ran(page, "designer template preview", dialogs)
    body = page.locator("textarea[name=body]")
    with page.expect_response(re.compile(r"/designer/draft/template-preview/")):
        body.fill("\n".join(PAYLOADS[::-1]))
    assert_nothing_ran(page, "designer live preview", dialogs)

    # The patient's own pages: the secure message (after the one-time code) and the live chat.
    link = re.search(r"https?://\S+/secure/\S+/", mail.outbox[0].body).group(0)
    context, patient_page, problems = new_patient_page(browser)
    patient_dialogs = listen(patient_page)
    patient_page.goto(link)
    patient_page.get_by_role("button", name="Send me a code").click()
    expect(patient_page.get_by_role("heading", name="Enter your code")).to_be_visible()
    code = CODE.search(mail.outbox[-1].body).group(1)
    patient_page.get_by_label("Verification code").fill(code)
    patient_page.get_by_role("button", name="Verify and read message").click()
    expect(patient_page.get_by_role("list", name="Messages")).to_contain_text("window.__xss=1")
    assert_nothing_ran(patient_page, "secure message page", patient_dialogs)

    patient_page.goto(f"{base}/chat/{make_chat_token(world['email'].patient)}/")
    expect(patient_page.locator("main")).to_contain_text("window.__xss=1")
    assert_nothing_ran(patient_page, "chat page", patient_dialogs)
    context.close()
    assert not problems, problems

    assert MessageTemplate.objects.filter(key="xss-all").count() == 2  # published and draft copies were shown


def test_the_detector_sees_a_payload_that_runs(browser):
    """The checks above would notice: the same payloads written into a page unescaped are caught."""
    context = browser.new_context()
    page = context.new_page()
    dialogs = listen(page)
    page.set_content("<main>" + "".join(PAYLOADS) + "</main>")
    with pytest.raises(AssertionError, match=r"a dialog opened|window\.__xss was set|live markup"):
        assert_nothing_ran(page, "unescaped page", dialogs)
    result = page.evaluate(CHECK, DANGEROUS)
    assert result["flag"] and len(result["bad"]) > 20
    assert dialogs
    context.close()
