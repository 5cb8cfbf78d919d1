"""The Inbox in a real browser: a nurse triages with a template, a lead assigns from Care Team → Unassigned only,
an Unrecognized email is linked and answered, and the keyboard drives the list. Screenshots of each main screen."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from designer.models import TemplateChannel
from inbox.models import AuditEvent, Channel, Communication, Message
from tests.factories import (
    AttachmentFactory,
    CareTeamMemberFactory,
    CommunicationFactory,
    ContactFactory,
    DocumentFactory,
    MessageFactory,
    MessageTemplateFactory,
    PatientContactMethodFactory,
    PatientFactory,
    SendingLineFactory,
    UnrecognizedCommunicationFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

IN, OUT = Message.Direction.INBOUND, Message.Direction.OUTBOUND


def conversation(patient, channel, messages, *, assignee=None, status="open", contact=None, **fields):
    """A communication with its messages; ``messages`` are (direction, text, minutes ago, author)."""
    now = timezone.now()
    last_direction, last_text, last_ago, _ = messages[-1]
    communication = CommunicationFactory(
        patient=patient,
        contact=contact,
        channel=channel,
        assignee=assignee,
        status=status,
        last_message_at=now - dt.timedelta(minutes=last_ago),
        last_message_preview=last_text[:200],
        last_message_direction=last_direction,
        opened_at=now - dt.timedelta(minutes=messages[0][2]),
        created_at=now - dt.timedelta(minutes=messages[0][2]),
        **fields,
    )
    for direction, text, ago, author in messages:
        MessageFactory(
            communication=communication,
            direction=direction,
            author=author,
            sender_name="" if direction == OUT else (contact.full_name if contact else patient.full_name),
            body_text=text,
            created_at=now - dt.timedelta(minutes=ago),
            delivery_status=Message.DeliveryStatus.DELIVERED
            if direction == OUT
            else Message.DeliveryStatus.RECEIVED,
        )
    return communication


@pytest.fixture
def clinic(published_config, nurse, lead, patient):
    """A realistic morning in the nurse's inbox."""
    version, _ = published_config
    main_line = SendingLineFactory(number="+15550100001", label="Main clinic")
    PatientContactMethodFactory(patient=patient, kind="email", value="maria.lopez@mail.example")
    people = {
        name: PatientFactory(first_name=name.split()[0], last_name=name.split()[1])
        for name in ("James Carter", "Aisha Khan", "Robert Chen", "Emily Nguyen", "Daniel Lopez")
    }
    for person in people.values():
        CareTeamMemberFactory(patient=person, user=nurse)
    PatientContactMethodFactory(
        patient=people["Daniel Lopez"], kind="email", value="lopez.family@mail.example"
    )
    PatientContactMethodFactory(patient=patient, kind="email", value="lopez.family@mail.example")
    mother = ContactFactory(
        patient=people["Emily Nguyen"], first_name="Linh", last_name="Nguyen", relationship="mother"
    )

    medication = conversation(
        patient,
        Channel.EMAIL,
        [
            (
                IN,
                "Hello, I have been feeling dizzy since starting the new blood pressure tablets.",
                190,
                None,
            ),
            (OUT, "Thank you Maria. How many times a day are you taking them?", 150, nurse),
            (
                IN,
                "Twice a day, morning and evening. Should I skip tonight's dose until I hear back?",
                12,
                None,
            ),
        ],
        assignee=nurse,
        subject="Dizzy after new medication",
        counterpart="maria.lopez@mail.example",
    )
    AttachmentFactory(message=medication.messages.first(), filename="bp-readings.pdf")
    reschedule = conversation(
        people["James Carter"],
        Channel.SMS,
        [(IN, "Hi, can I move my appointment on Friday to Thursday afternoon?", 35, None)],
        assignee=nurse,
        sending_line=main_line,
        counterpart="+15550102031",
    )
    conversation(
        people["Aisha Khan"],
        Channel.CHAT,
        [(IN, "Is the clinic open on Saturday mornings?", 70, None)],
        assignee=nurse,
        counterpart="chat:aisha",
    )
    conversation(
        people["Emily Nguyen"],
        Channel.SMS,
        [(IN, "Emily has a fever of 101.2 since last night, should we come in?", 95, None)],
        assignee=nurse,
        contact=mother,
        sending_line=main_line,
        counterpart="+15550102044",
    )
    conversation(
        people["Robert Chen"],
        Channel.EMAIL,
        [
            (IN, "Could you send me my lab results from last week?", 60 * 26, None),
            (OUT, "Hi Robert, your results are attached. Everything looks normal.", 60 * 25, nurse),
        ],
        assignee=nurse,
        status=Communication.Status.CLOSED,
        subject="Lab results",
        closed_at=timezone.now() - dt.timedelta(hours=25),
    )
    unrecognized = UnrecognizedCommunicationFactory(
        channel=Channel.EMAIL,
        assignee=nurse,
        counterpart="lopez.family@mail.example",
        subject="Appointment letter",
        last_message_preview="We received a letter about an appointment but it doesn't say for whom.",
        last_message_at=timezone.now() - dt.timedelta(minutes=50),
        opened_at=timezone.now() - dt.timedelta(minutes=50),
    )
    unrecognized.candidate_patients.add(patient, people["Daniel Lopez"])
    MessageFactory(
        communication=unrecognized,
        sender_name="Lopez family",
        sender_address="lopez.family@mail.example",
        body_text="We received a letter about an appointment but it doesn't say for whom. Can you tell us?",
        created_at=timezone.now() - dt.timedelta(minutes=50),
    )
    unassigned = conversation(
        people["Robert Chen"],
        Channel.SMS,
        [(IN, "Running 10 minutes late for my 11:00, sorry!", 8, None)],
        sending_line=main_line,
        counterpart="+15550102055",
    )
    MessageTemplateFactory(
        version=version,
        name="Medication question",
        channel=TemplateChannel.EMAIL,
        body="Hi {{ patient.first_name }}, please keep taking your medication as prescribed until we speak. "
        "I will call you today.\n\n{{ user.full_name }}",
    )
    MessageTemplateFactory(
        version=version,
        name="Appointment change",
        channel=TemplateChannel.SMS,
        body="Hi {{ patient.first_name }}, we can move your appointment. Reply YES to confirm.",
    )
    return {
        "medication": medication,
        "reschedule": reschedule,
        "unrecognized": unrecognized,
        "unassigned": unassigned,
        "people": people,
    }


def test_nurse_triages_inserts_a_template_and_send_and_close_greys_the_row(
    page, live_server, nurse, clinic, sign_in, screenshot
):
    sign_in("nurse")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox", exact=True).click()
    expect(page).to_have_url(re.compile(r"/inbox/my/assigned/$"))
    rows = page.get_by_role("list", name="Communications in Assigned to me")
    expect(rows.get_by_role("listitem")).to_have_count(6)
    screenshot("inbox-assigned-to-me")

    medication = clinic["medication"]
    rows.get_by_role("link", name=re.compile("Maria Lopez")).click()
    expect(page).to_have_url(re.compile(rf"\?c={medication.pk}$"))
    expect(page.get_by_role("heading", name=re.compile("Maria Lopez"))).to_be_visible()
    messages = page.get_by_role("log", name="Messages")
    expect(messages).to_contain_text("Should I skip tonight's dose")
    expect(messages.get_by_role("link", name=re.compile("bp-readings.pdf"))).to_be_visible()
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.COMMUNICATION_VIEWED, communication=medication, actor=nurse
    ).exists()
    screenshot("inbox-conversation-email")

    page.get_by_label("Use a template").click()
    screenshot("inbox-reply-templates")
    page.get_by_role("button", name=re.compile("Medication question")).click()
    editor = page.get_by_role("textbox", name="Email to Maria Lopez")
    expect(editor).to_contain_text("Hi Maria, please keep taking your medication")
    expect(editor).to_contain_text("Nora Nurse")
    editor.press("End")
    editor.type(" Thanks!")
    page.get_by_role("button", name="Send and Close").click()

    row = page.locator(f"#row-{medication.pk}")
    expect(row).to_have_class(re.compile("is-closed"))
    expect(page.get_by_test_id("conversation-status")).to_have_text("Closed")
    expect(messages).to_contain_text("Hi Maria, please keep taking your medication")
    medication.refresh_from_db()
    assert medication.status == Communication.Status.CLOSED
    sent = medication.messages.filter(direction=OUT).latest("created_at")
    assert "Thanks!" in sent.body_text and sent.author == nurse
    screenshot("inbox-after-send-and-close")


def test_lead_assigns_from_care_team_unassigned_only(
    page, live_server, nurse, lead, clinic, sign_in, screenshot
):
    unassigned = clinic["unassigned"]
    CareTeamMemberFactory(patient=unassigned.patient, user=lead)
    sign_in("lead")
    page.goto(f"{live_server.url}/inbox/care-team/directed/")
    page.locator("#filters").get_by_text("Unassigned", exact=True).click()
    expect(page).to_have_url(re.compile(r"unassigned=1"))
    rows = page.get_by_role("list", name="Communications in Directed")
    expect(rows.get_by_role("listitem")).to_have_count(1)
    rows.get_by_role("link", name=re.compile("Robert Chen")).click()
    expect(page.get_by_test_id("assignee")).to_contain_text("Unassigned")
    page.get_by_role("button", name="Assign").click()
    dialog = page.get_by_role("dialog", name="Assign conversation")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name=re.compile("Nora Nurse"))).to_be_visible()
    screenshot("inbox-assign-dialog")
    dialog.get_by_role("button", name=re.compile("Nora Nurse")).click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("assignee")).to_contain_text("Nora Nurse")
    expect(page.locator(f"#row-{unassigned.pk}")).to_contain_text("NN")
    unassigned.refresh_from_db()
    assert unassigned.assignee == nurse


def test_an_unrecognized_email_is_linked_then_answered(page, live_server, nurse, clinic, sign_in, screenshot):
    unrecognized = clinic["unrecognized"]
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/unrecognized/")
    rows = page.get_by_role("list", name="Communications in Unrecognized")
    expect(rows).to_contain_text("2 matches")
    rows.get_by_role("link", name=re.compile("lopez.family@mail.example")).click()
    expect(page.get_by_text("Not linked to a patient yet.")).to_be_visible()
    screenshot("inbox-unrecognized")

    page.get_by_role("button", name="Link", exact=True).click()
    dialog = page.get_by_role("dialog", name="Link to a patient")
    expect(dialog.get_by_role("button", name=re.compile("Link to Maria Lopez"))).to_be_visible()
    expect(dialog.get_by_role("button", name=re.compile("Link to Daniel Lopez"))).to_be_visible()
    dialog.get_by_label("Search patients").fill("Aisha")
    expect(dialog.get_by_role("button", name=re.compile("Link to Aisha Khan"))).to_be_visible()
    dialog.get_by_label(re.compile("Remember lopez.family@mail.example")).check()
    screenshot("inbox-link-dialog")
    dialog.get_by_role("button", name=re.compile("Link to Maria Lopez")).click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name=re.compile("Maria Lopez"))).to_be_visible()
    editor = page.get_by_role("textbox", name="Email to Maria Lopez")
    editor.click()
    editor.type("Hi, the letter is for Maria's cardiology follow-up on the 14th.")
    page.get_by_label("More send options").click()
    page.get_by_role("button", name=re.compile("Send and keep Open")).click()
    expect(page.get_by_role("log", name="Messages")).to_contain_text("cardiology follow-up on the 14th")
    expect(page.get_by_test_id("conversation-status")).to_have_text("Open")
    unrecognized.refresh_from_db()
    assert (unrecognized.patient, unrecognized.is_unrecognized, unrecognized.status) == (
        clinic["medication"].patient,
        False,
        Communication.Status.OPEN,
    )
    assert unrecognized.patient.contact_methods.filter(value="lopez.family@mail.example").exists()
    screenshot("inbox-linked-and-answered")


def test_keyboard_moves_opens_searches_and_shows_shortcuts(
    page, live_server, nurse, clinic, sign_in, screenshot
):
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/assigned/")
    rows = page.get_by_role("list", name="Communications in Assigned to me")
    expect(rows.get_by_role("listitem")).to_have_count(6)

    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.get_by_role("link").nth(1)).to_be_focused()
    page.keyboard.press("k")
    expect(rows.get_by_role("link").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"\?c={clinic['medication'].pk}$"))
    expect(page.get_by_role("heading", name=re.compile("Maria Lopez"))).to_be_visible()

    page.keyboard.press("r")
    expect(page.get_by_role("textbox", name="Email to Maria Lopez")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    expect(page.get_by_test_id("conversation-status")).to_have_text("Closed")
    expect(page.locator(f"#row-{clinic['medication'].pk}")).to_have_class(re.compile("is-closed"))

    page.keyboard.press("a")
    expect(page.get_by_role("dialog", name="Assign conversation")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Assign conversation")).to_have_count(0)

    expect(page.get_by_role("button", name="Assign")).to_be_focused()  # focus returns to the opener
    page.keyboard.press("/")
    search = page.get_by_label("Search communications")
    expect(search).to_be_focused()
    search.fill("James")
    expect(rows.get_by_role("listitem")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=James"))
    expect(page.get_by_role("heading", name=re.compile("Maria Lopez"))).to_be_visible()

    page.reload()  # the URL holds folder, search and the open conversation
    search = page.get_by_label("Search communications")
    expect(search).to_have_value("James")
    expect(rows.get_by_role("listitem")).to_have_count(1)
    expect(page.get_by_role("heading", name=re.compile("Maria Lopez"))).to_be_visible()

    search.press("Escape")  # clears the search box and leaves it
    expect(rows.get_by_role("listitem")).to_have_count(6)
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    screenshot("inbox-shortcuts")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()


def test_nurse_starts_an_sms_from_a_sending_line_and_sees_the_patient_panel(
    page, live_server, nurse, clinic, sign_in, screenshot
):
    james = clinic["people"]["James Carter"]
    PatientContactMethodFactory(patient=james, kind="phone", value="+15550102031", label="mobile")
    SendingLineFactory(number="+15550100002", label="Cardiology")
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/sent/")
    page.get_by_role("button", name="New message").click()
    dialog = page.get_by_role("dialog", name="New message")
    dialog.get_by_label("Patient").fill("Carter")
    dialog.get_by_role("button", name=re.compile("James Carter")).click()
    expect(dialog.get_by_label("From (sending line)")).to_be_visible()
    dialog.get_by_label("From (sending line)").select_option(label="Cardiology · +15550100002")
    dialog.get_by_label("Message").fill("Hi James, this is Nora from cardiology. Please call us back today.")
    screenshot("inbox-new-sms")
    dialog.get_by_role("button", name="Send and keep Open").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name=re.compile("James Carter"))).to_contain_text("Cardiology")
    created = Communication.objects.get(patient=james, sending_line__label="Cardiology")
    expect(page).to_have_url(re.compile(rf"/inbox/my/sent/\?c={created.pk}$"))
    expect(page.locator(f"#row-{created.pk}")).to_be_visible()
    assert created.status == Communication.Status.OPEN and created.assignee == nurse

    toggle = page.get_by_role("button", name="Toggle patient information")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(page.get_by_role("complementary", name="Patient information")).to_contain_text("James Carter")
    screenshot("inbox-patient-panel")


def test_reply_box_tools_format_emoji_attach_secure_and_keep_the_draft(
    page, live_server, nurse, clinic, sign_in, screenshot, settings
):
    settings.MAX_UPLOAD_BYTES = 1024
    medication = clinic["medication"]
    DocumentFactory(patient=medication.patient, name="care-plan.pdf")
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/assigned/?c={medication.pk}")
    editor = page.get_by_role("textbox", name="Email to Maria Lopez")
    editor.click()
    editor.type("Please read ")

    # The draft survives opening another conversation and coming back.
    page.get_by_role("list", name="Communications in Assigned to me").get_by_role(
        "link", name=re.compile("James Carter")
    ).click()
    expect(page.get_by_role("heading", name=re.compile("James Carter"))).to_be_visible()
    page.get_by_role("list", name="Communications in Assigned to me").get_by_role(
        "link", name=re.compile("Maria Lopez")
    ).click()
    editor = page.get_by_role("textbox", name="Email to Maria Lopez")
    expect(editor).to_have_text("Please read ")

    page.get_by_role("button", name="Text formatting").click()
    toolbar = page.get_by_role("toolbar", name="Text formatting")
    expect(toolbar).to_be_visible()
    editor.press("End")
    toolbar.get_by_role("button", name="Bold").click()
    editor.type("the care plan")
    toolbar.get_by_role("button", name="Bold").click()
    page.get_by_label("Insert emoji").click()
    page.get_by_role("button", name="Insert 🙏").click()

    page.get_by_label("Attach a file").click()
    page.get_by_label(re.compile("care-plan.pdf")).check()
    page.locator("[data-upload]").set_input_files(
        files=[{"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"x" * 2048}]
    )
    expect(page.get_by_role("alert")).to_contain_text("“scan.pdf” is larger than the 1 KB limit.")
    expect(page.locator("[data-attachment-chips]")).to_contain_text("care-plan.pdf")
    expect(page.locator("[data-attachment-chips]")).not_to_contain_text("scan.pdf")

    page.locator(".secure-toggle").click()
    send = page.get_by_role("button", name="Send securely", exact=True)
    expect(send).to_be_visible()
    screenshot("inbox-reply-tools")
    send.click()

    messages = page.get_by_role("log", name="Messages")
    expect(messages.locator("strong, b").filter(has_text="the care plan")).to_be_visible()
    expect(messages).to_contain_text("Secure")
    sent = medication.messages.filter(direction=OUT).latest("created_at")
    assert sent.is_secure and "🙏" in sent.body_text
    assert re.search(r"<(b|strong)>the care plan", sent.body_html)
    assert list(sent.attachments.values_list("filename", flat=True)) == ["care-plan.pdf"]
    expect(page.get_by_role("textbox", name="Email to Maria Lopez")).to_have_text("")


def test_an_empty_folder_says_what_would_appear_there(page, live_server, other_nurse, sign_in, screenshot):
    sign_in("other-nurse")
    page.goto(f"{live_server.url}/inbox/")
    expect(page.get_by_role("heading", name="Nothing is assigned to you")).to_be_visible()
    page.get_by_role("button", name="New message").click()
    expect(page.get_by_role("dialog", name="New message").get_by_label("Patient")).to_be_focused()
    screenshot("inbox-empty-and-new-message")


def test_both_status_chips_off_show_the_empty_state_and_its_link_restores_them(
    page, live_server, nurse, clinic, sign_in, screenshot
):
    """Issue 14, item 5: with Open and Closed both off the list showed everything while both chips looked off."""
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/assigned/")
    rows = page.get_by_role("list", name="Communications in Assigned to me")
    expect(rows.get_by_role("listitem")).to_have_count(6)
    filters = page.locator("#filters")
    open_chip = filters.get_by_role("checkbox", name="Open", exact=True)
    closed_chip = filters.get_by_role("checkbox", name="Closed", exact=True)
    filters.get_by_text("Open", exact=True).click()
    expect(open_chip).not_to_be_checked()
    expect(page).to_have_url(re.compile(r"\?status=closed$"))
    filters.get_by_text("Closed", exact=True).click()
    expect(closed_chip).not_to_be_checked()
    expect(page).to_have_url(re.compile(r"\?status=$"))
    empty = page.get_by_role("heading", name="Choose Open, Closed or both to see communications")
    expect(empty).to_be_visible()
    expect(rows.locator("[data-row]")).to_have_count(0)
    screenshot("inbox-no-status-chosen")
    page.get_by_role("link", name="Show Open and Closed").click()
    expect(page).to_have_url(re.compile(r"/inbox/my/assigned/$"))
    expect(rows.get_by_role("listitem")).to_have_count(6)
    expect(filters.get_by_role("checkbox", name="Open", exact=True)).to_be_checked()
    expect(filters.get_by_role("checkbox", name="Closed", exact=True)).to_be_checked()


def test_the_notifications_panel_opens_over_the_inbox_list(
    page, live_server, nurse, clinic, sign_in, screenshot
):
    """Not underneath it: the filter chips and rows beside the sidebar were drawn over the panel."""
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/care-team/directed/")
    page.get_by_test_id("bell").click()
    panel = page.locator(".bell-panel")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert (
        box["x"] + box["width"] > page.locator("#inbox-list").bounding_box()["x"]
    )  # it does reach over the list
    for x, y in (
        (box["x"] + box["width"] - 20, box["y"] + 30),
        (box["x"] + box["width"] - 20, box["y"] + 120),
    ):
        assert page.evaluate("([x, y]) => !!document.elementFromPoint(x, y).closest('.bell-panel')", [x, y])
    screenshot("notifications-panel-over-the-list")


def test_nurse_invites_the_patient_to_live_chat_from_the_reply_box(
    page, live_server, nurse, patient, sign_in, screenshot, settings
):
    from inbox.delivery import LocmemSmsBackend

    settings.SMS_BACKEND = "inbox.delivery.LocmemSmsBackend"
    LocmemSmsBackend.outbox.clear()
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030", is_primary=True)
    sms = CommunicationFactory(
        patient=patient, channel=Channel.SMS, assignee=nurse, counterpart="+15550102030",
        sending_line=SendingLineFactory(number="+15550100001", label="Main clinic"),
    )  # fmt: skip
    MessageFactory(communication=sms, body_text="Can we talk now?", sender_name="Maria Lopez")
    sign_in("nurse")
    page.goto(f"{live_server.url}/inbox/my/assigned/?c={sms.pk}")
    page.get_by_text("Invite to chat").click()
    screenshot("reply-box-chat-invite")
    page.get_by_test_id("chat-invite-sms").click()
    expect(page.locator(".chat-invite-result")).to_contain_text("Chat link sent by SMS to +15550102030")
    invitation = Message.objects.get(communication=sms, author=nurse)  # a reply in this conversation
    assert "/chat/" in invitation.body_text
    assert any("/chat/" in sent["body"] for sent in LocmemSmsBackend.outbox)
