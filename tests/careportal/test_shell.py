"""The Care Portal shell: a sidebar built from the user's *published* role menu, the home page and Patients."""

from django.urls import reverse

from designer.models import ConfigVersion, MenuItem, RoleMenuItem
from tests.factories import ConfigVersionFactory, PatientFactory, RoleFactory


def nav_keys(response) -> list[str]:
    return [item["key"] for item in response.context["sidebar"]]


def test_nurse_sidebar_shows_home_inbox_and_patients(client, nurse):
    client.force_login(nurse)
    response = client.get(reverse("careportal:home"))
    assert response.status_code == 200
    assert nav_keys(response) == ["home", "inbox", "patients"]
    assert b'data-nav="inbox"' in response.content


def test_sidebar_has_no_inbox_when_the_published_role_menu_lacks_it(client, outsider):
    client.force_login(outsider)
    response = client.get(reverse("careportal:home"))
    assert nav_keys(response) == ["home"]
    assert b'data-nav="inbox"' not in response.content


def test_a_draft_that_adds_inbox_changes_nothing_until_published(client, outsider, published_config):
    draft = ConfigVersionFactory(status=ConfigVersion.Status.DRAFT, published_at=None)
    RoleFactory(version=draft, key="front-desk", name="Front Desk", menu=[MenuItem.HOME, MenuItem.INBOX])
    client.force_login(outsider)
    assert nav_keys(client.get(reverse("careportal:home"))) == ["home"]


def test_inbox_page_is_404_for_a_role_without_inbox(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("careportal:inbox")).status_code == 404


def test_inbox_opens_the_first_folder_of_my_inbox(client, nurse):
    client.force_login(nurse)
    response = client.get(reverse("careportal:inbox"))
    assert response.status_code == 302
    assert response["Location"] == reverse("careportal:inbox_folder", args=["my", "assigned"])


def test_patients_page_lists_only_visible_patients(client, nurse, patient):
    hidden = PatientFactory(first_name="Hidden", last_name="Person")
    client.force_login(nurse)
    response = client.get(reverse("careportal:patients"))
    assert response.status_code == 200
    assert patient.last_name.encode() in response.content
    assert hidden.last_name.encode() not in response.content


def test_patients_page_is_404_when_the_menu_lacks_it(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("careportal:patients")).status_code == 404


def test_removing_patients_from_the_published_menu_hides_the_page(client, nurse, published_config):
    _, roles = published_config
    RoleMenuItem.objects.filter(role=roles["nurse"], item=MenuItem.PATIENTS).delete()
    client.force_login(nurse)
    assert client.get(reverse("careportal:patients")).status_code == 404


def test_home_rejects_post(client, nurse):
    client.force_login(nurse)
    assert client.post(reverse("careportal:home")).status_code == 405


def test_home_offers_only_the_pages_the_role_has(client, nurse, administrator):
    client.force_login(administrator)
    home = client.get("/").content.decode()
    assert "/patients/" not in home and client.get("/patients/").status_code == 404  # no dead link
    client.force_login(nurse)
    assert 'href="/patients/"' in client.get("/").content.decode()
