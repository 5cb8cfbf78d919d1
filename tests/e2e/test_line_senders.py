"""Browser test: an administrator limits a sending line to one nurse in the Admin Portal; another nurse's new-SMS
picker no longer offers it, while the named nurse's still does."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.factories import (
    CareTeamMemberFactory,
    PatientContactMethodFactory,
    SendingLineFactory,
    UserFactory,
)


def _picker_options(browser_page, live_server) -> list[str]:
    browser_page.goto(f"{live_server.url}/inbox/my/sent/")
    browser_page.get_by_role("button", name="New message").click()
    dialog = browser_page.get_by_role("dialog", name="New message")
    dialog.get_by_label("Patient").fill("Lopez")
    dialog.get_by_role("button", name=re.compile("Maria Lopez")).click()
    picker = dialog.get_by_label("From (sending line)")
    expect(picker).to_be_visible()
    return [text.strip() for text in picker.locator("option").all_inner_texts()]


def test_an_administrator_limits_a_line_to_one_nurse_and_the_other_nurse_no_longer_sees_it(
    page, live_server, sign_in, screenshot, second_page, administrator, nurse, patient
):
    PatientContactMethodFactory(patient=patient, kind="phone", value="+15550102030", label="mobile")
    SendingLineFactory(number="+15550100001", label="Main clinic")
    SendingLineFactory(number="+15550100002", label="Cardiology")
    colleague = UserFactory(username="colleague", first_name="Cara", last_name="Colleague", role="care-nurse")
    CareTeamMemberFactory(patient=patient, user=colleague)

    colleague_page = second_page("colleague")
    assert _picker_options(colleague_page, live_server) == [
        "Cardiology · +15550100002",
        "Main clinic · +15550100001",
    ]

    sign_in("admin")
    page.goto(f"{live_server.url}/admin-portal/lines/")
    page.locator('tr[data-line="+15550100002"] .cfg-name').click()
    senders = page.get_by_test_id("line-senders")
    expect(senders).to_contain_text("Everyone with Inbox access")
    screenshot("admin-line-senders-everyone")

    senders.get_by_label("Add a sender").select_option(label="Nora Nurse · Care Team Nurse")
    senders.get_by_role("button", name="Add").click()

    expect(page.locator(".flash")).to_contain_text("Nora Nurse may now send from Cardiology.")
    expect(page.get_by_test_id("senders")).to_contain_text("Nora Nurse")
    expect(senders).not_to_contain_text("Everyone with Inbox access")
    screenshot("admin-line-senders")

    assert _picker_options(colleague_page, live_server) == ["Main clinic · +15550100001"]
    colleague_page.screenshot(path=str(SCREENSHOTS / "inbox-new-sms-restricted-line.png"), full_page=True)

    # The named nurse still has it.
    page.context.clear_cookies()
    sign_in("nurse")
    assert _picker_options(page, live_server) == ["Cardiology · +15550100002", "Main clinic · +15550100001"]
