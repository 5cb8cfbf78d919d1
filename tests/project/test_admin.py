"""Django admin: every registered model's pages load for a superuser; the audit log is view only; staff only."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from adminportal.admin import EstimatedCountPaginator
from careportal.models import Patient
from designer.models import ConfigVersion, Role
from inbox.models import AuditEvent, Communication, Message
from tests.factories import (
    AttachmentFactory,
    AuditEventFactory,
    CareTeamMemberFactory,
    CommunicationFactory,
    ConfigVersionFactory,
    ContactFactory,
    DocumentFactory,
    DraftConfigVersionFactory,
    EncounterFactory,
    FeatureSettingFactory,
    InboundAddressFactory,
    MessageFactory,
    MessageTemplateFactory,
    NotificationFactory,
    PatientContactMethodFactory,
    PatientFactory,
    PolicyGrantFactory,
    RawInboundFactory,
    RegionFactory,
    RoleFactory,
    RoleMenuItemFactory,
    SecureMessageFactory,
    SendingLineFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
REGISTERED_IDS = [model._meta.label for model, _ in REGISTERED]
SEARCHABLE = [(model, model_admin) for model, model_admin in REGISTERED if model_admin.search_fields]


def _grant(patient):
    return assign_perm("careportal.view_patient", UserFactory(), patient)


# One way to make a row of each registered model. A model registered without an entry here fails
# ``test_every_registered_model_has_a_row`` with a message naming it.
ROW_MAKERS = {
    "auth.Group": lambda: Group.objects.create(name="Auditors"),
    "adminportal.Region": RegionFactory,
    "adminportal.User": lambda: UserFactory(role="care-nurse", title="RN"),
    "adminportal.FeatureSetting": FeatureSettingFactory,
    # Inbox API tokens and webhooks (issue 8): no factory, built directly.
    "adminportal.ApiToken": lambda: _api_row("ApiToken", name="EHR", prefix="cit_abc", secret_hash="0" * 64),
    "adminportal.WebhookSubscription": lambda: _api_row("WebhookSubscription", name="EHR", secret="s"),
    "adminportal.WebhookDelivery": lambda: _api_row("WebhookDelivery", event="message.created", payload={}),
    "designer.ConfigVersion": ConfigVersionFactory,
    "designer.Role": lambda: RoleFactory(version=ConfigVersion.objects.get(status="published")),
    "designer.RoleMenuItem": lambda: RoleMenuItemFactory(role=Role.objects.first()),
    "designer.PolicyGrant": lambda: PolicyGrantFactory(role=Role.objects.first()),
    "designer.MessageTemplate": lambda: MessageTemplateFactory(
        version=ConfigVersion.objects.get(status="published")
    ),
    "careportal.Patient": PatientFactory,
    "careportal.PatientContactMethod": PatientContactMethodFactory,
    "careportal.Contact": ContactFactory,
    "careportal.CareTeamMember": CareTeamMemberFactory,
    "careportal.Encounter": EncounterFactory,
    "careportal.Document": DocumentFactory,
    "careportal.PatientUserObjectPermission": lambda: _grant(PatientFactory()),
    "inbox.SendingLine": SendingLineFactory,
    "inbox.SendingLineUserObjectPermission": lambda: assign_perm(
        "inbox.send_from_line", UserFactory(), SendingLineFactory()
    ),
    "inbox.InboundAddress": InboundAddressFactory,
    "inbox.Communication": lambda: CommunicationFactory(
        sending_line=SendingLineFactory(), assignee=UserFactory()
    ),
    "inbox.Message": lambda: MessageFactory(author=UserFactory(), provider_id="SM123"),
    "inbox.Attachment": AttachmentFactory,
    "inbox.RawInbound": lambda: RawInboundFactory(raw=b"From: someone\r\n\r\nHello"),
    "inbox.Notification": NotificationFactory,
    "inbox.AuditEvent": AuditEventFactory,
    "inbox.SecureAccessCode": lambda: _secure_code(),
    # django-axes: sign-in attempts and lockouts (inbox_project/security.py).
    "axes.AccessAttempt": lambda: _axes_row("AccessAttempt", failures_since_start=5),
    "axes.AccessLog": lambda: _axes_row("AccessLog"),
    "axes.AccessFailureLog": lambda: _axes_row("AccessFailureLog", locked_out=True),
}


def _api_row(model_name: str, **fields):
    from adminportal import models

    if model_name == "WebhookSubscription":
        fields.update(url="https://hooks.example.com/", event_types=["message.created"])
    if model_name == "WebhookDelivery":
        fields["subscription"] = _api_row("WebhookSubscription", name="Other", secret="s")
    else:
        fields["user"] = UserFactory()
    return getattr(models, model_name).objects.create(**fields)


def _axes_row(model_name: str, **fields):
    from django.apps import apps

    model = apps.get_model("axes", model_name)
    return model.objects.create(
        username="nurse", ip_address="127.0.0.1", user_agent="pytest", path_info="/accounts/login/", **fields
    )


def _secure_code():
    from datetime import timedelta

    from django.utils import timezone

    from inbox.models import SecureAccessCode

    message = SecureMessageFactory()
    return SecureAccessCode.objects.create(
        communication=message.communication,
        message=message,
        code_hash="salt$hash",
        sent_to=message.recipient_address,
        expires_at=timezone.now() + timedelta(minutes=10),
    )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Every row maker creates users; the production hasher would make this module take minutes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def rows(db):
    """At least one row of every registered model (in dependency order: a published version comes first)."""
    made = {}
    for label, make in ROW_MAKERS.items():
        made[label] = make()
    return made


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_admin_index_lists_every_app_for_a_superuser(admin_client):
    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    for model, _ in REGISTERED:
        assert _url(model, "changelist") in response.content.decode()


def test_every_registered_model_has_a_row(rows):
    missing = [label for label in REGISTERED_IDS if label not in ROW_MAKERS]
    assert not missing, f"add a row maker to ROW_MAKERS in {__name__} for {missing}"


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=REGISTERED_IDS)
def test_changelist_lists_the_row_for_a_superuser(admin_client, rows, model, model_admin):
    obj = model._default_manager.first()
    assert obj is not None, f"no row of {model._meta.label}: add it to ROW_MAKERS"

    response = admin_client.get(_url(model, "changelist"))

    assert response.status_code == 200
    assert _url(model, "change", obj.pk) in response.content.decode()


@pytest.mark.parametrize(("model", "model_admin"), SEARCHABLE, ids=[m._meta.label for m, _ in SEARCHABLE])
def test_changelist_search_answers_for_a_superuser(admin_client, rows, model, model_admin):
    response = admin_client.get(_url(model, "changelist"), {"q": "Lopez 555"})

    assert response.status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=REGISTERED_IDS)
def test_change_page_loads_for_a_superuser(admin_client, rows, model, model_admin):
    obj = model._default_manager.first()

    response = admin_client.get(_url(model, "change", obj.pk))

    assert response.status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=REGISTERED_IDS)
def test_add_page_loads_where_adding_is_permitted(admin_client, rf, superuser, rows, model, model_admin):
    request = rf.get("/")
    request.user = superuser

    response = admin_client.get(_url(model, "add"))

    assert response.status_code == (200 if model_admin.has_add_permission(request) else 403)


def test_audit_event_add_page_is_forbidden(admin_client):
    assert admin_client.get(_url(AuditEvent, "add")).status_code == 403


def test_audit_event_changelist_offers_no_delete_action(admin_client, rf, superuser):
    AuditEventFactory()
    request = rf.get("/")
    request.user = superuser

    response = admin_client.get(_url(AuditEvent, "changelist"))

    assert response.status_code == 200
    assert admin.site._registry[AuditEvent].get_actions(request) == {}
    assert "delete_selected" not in response.content.decode()


def test_audit_event_change_page_is_view_only_and_post_changes_nothing(admin_client):
    event = AuditEventFactory(actor_label="Nora Nurse")

    page = admin_client.get(_url(AuditEvent, "change", event.pk))
    response = admin_client.post(
        _url(AuditEvent, "change", event.pk), {"action": AuditEvent.Action.SIGN_OUT, "actor_label": "forged"}
    )

    assert page.status_code == 200
    assert 'type="submit"' not in page.content.decode().split('id="auditevent_form"')[-1]
    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.action, event.actor_label) == (AuditEvent.Action.COMMUNICATION_VIEWED, "Nora Nurse")


def test_audit_event_delete_page_is_forbidden(admin_client):
    event = AuditEventFactory()

    response = admin_client.post(_url(AuditEvent, "delete", event.pk), {"post": "yes"})

    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_audit_event_changelist_filters_by_action_and_searches_actor_and_patient(admin_client):
    nora = UserFactory(username="nora")
    viewed = AuditEventFactory(
        actor=nora, communication=CommunicationFactory(patient=PatientFactory(last_name="Lopez"))
    )
    signed_in = AuditEventFactory(
        actor=UserFactory(username="otto"), action=AuditEvent.Action.SIGN_IN, communication=None
    )
    changelist = _url(AuditEvent, "changelist")

    by_action = admin_client.get(changelist, {"action__exact": AuditEvent.Action.SIGN_IN}).content.decode()
    by_actor = admin_client.get(changelist, {"q": "nora"}).content.decode()
    by_patient = admin_client.get(changelist, {"q": "Lopez"}).content.decode()
    by_day = admin_client.get(
        changelist, {"at__year": viewed.at.year, "at__month": viewed.at.month, "at__day": viewed.at.day}
    )

    assert _url(AuditEvent, "change", signed_in.pk) in by_action
    assert _url(AuditEvent, "change", viewed.pk) not in by_action
    assert _url(AuditEvent, "change", viewed.pk) in by_actor
    assert _url(AuditEvent, "change", signed_in.pk) not in by_actor
    assert _url(AuditEvent, "change", viewed.pk) in by_patient
    assert by_day.status_code == 200


def test_raw_inbound_keeps_what_arrived_read_only(admin_client):
    item = RawInboundFactory(raw=b"Subject: hi\r\n\r\nHello <b>there</b>", payload={"From": "+15550102030"})

    page = admin_client.get(_url(item, "change", item.pk)).content.decode()
    admin_client.post(
        _url(item, "change", item.pk),
        {"provider_id": "forged", "source": "chat", "payload": "{}", "attempts": "3", "error": "retry"},
    )

    assert "Hello &lt;b&gt;there&lt;/b&gt;" in page
    assert 'name="payload"' not in page
    item.refresh_from_db()
    assert item.provider_id != "forged"
    assert item.source == "twilio_sms"
    assert item.payload == {"From": "+15550102030"}
    assert (item.attempts, item.error) == (3, "retry")


def test_communication_links_to_its_messages(admin_client):
    message = MessageFactory()
    other = MessageFactory()

    page = admin_client.get(_url(Communication, "change", message.communication_id)).content.decode()
    listed = admin_client.get(
        _url(Message, "changelist"), {"communication__id__exact": message.communication_id}
    ).content.decode()

    assert f"?communication__id__exact={message.communication_id}" in page
    assert _url(Message, "change", message.pk) in listed
    assert _url(Message, "change", other.pk) not in listed


def test_user_admin_adds_a_user_with_role_title_and_time_zone(admin_client, published_config):
    response = admin_client.post(
        _url(UserFactory._meta.model, "add"),
        {
            "username": "new-nurse",
            "usable_password": "true",
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
            "first_name": "Nia",
            "last_name": "New",
            "email": "nia@clinic.example",
            "role": "care-nurse",
            "title": "RN",
            "time_zone": "America/Denver",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    user = UserFactory._meta.model.objects.get(username="new-nurse")
    assert (user.role, user.title, user.time_zone) == ("care-nurse", "RN", "America/Denver")
    assert user.check_password("a-long-unusual-passphrase")


def test_user_admin_change_page_offers_role_time_zone_and_regions(admin_client, published_config):
    nurse = UserFactory(role="care-nurse")

    page = admin_client.get(_url(nurse, "change", nurse.pk)).content.decode()

    assert "Care Team Nurse (care-nurse)" in page
    assert 'name="time_zone"' in page
    assert 'name="regions"' in page


def test_published_role_is_read_only_and_draft_role_is_editable(admin_client, published_config):
    _, roles = published_config
    draft_role = RoleFactory(version=DraftConfigVersionFactory(), key="care-nurse", name="Care Team Nurse")

    published_post = admin_client.post(
        _url(Role, "change", roles["nurse"].pk), {"name": "Renamed", "key": "care-nurse", "is_active": "on"}
    )
    draft_page = admin_client.get(_url(Role, "change", draft_role.pk)).content.decode()

    assert published_post.status_code == 403
    roles["nurse"].refresh_from_db()
    assert roles["nurse"].name == "Care Team Nurse"
    assert 'name="name"' in draft_page
    assert 'name="menu_items-TOTAL_FORMS"' in draft_page
    assert 'name="policy_grants-TOTAL_FORMS"' in draft_page


def test_feature_setting_change_is_audited(admin_client, superuser):
    setting = FeatureSettingFactory(is_enabled=True)

    response = admin_client.post(_url(setting, "change", setting.pk), {"key": setting.key, "value": "{}"})

    assert response.status_code == 302
    setting.refresh_from_db()
    assert (setting.is_enabled, setting.updated_by) == (False, superuser)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SETTING_CHANGED)
    assert (event.actor, event.detail["key"], event.detail["is_enabled"]) == (superuser, setting.key, False)


def test_explicit_patient_grant_offers_only_patient_permissions(admin_client):
    page = admin_client.get(_url(_grant(PatientFactory()), "add")).content.decode()

    assert "view_patient" in page or "Can view patient" in page
    assert "Can view communication" not in page


def _changelist_queries(client, model) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(_url(model, "changelist")).status_code == 200
    return len(queries)


@pytest.mark.parametrize("model", [Communication, Message, AuditEvent, Patient], ids=lambda m: m._meta.label)
def test_changelist_of_a_big_table_takes_the_same_queries_for_more_rows(admin_client, model):
    def add_rows():
        for _ in range(3):
            AttachmentFactory(message=MessageFactory(author=UserFactory()))
            AuditEventFactory()

    add_rows()
    admin_client.get(_url(model, "changelist"))  # warm per-process caches (content types)
    few = _changelist_queries(admin_client, model)
    add_rows()
    many = _changelist_queries(admin_client, model)

    assert many == few


def test_paginator_counts_small_or_filtered_lists_exactly(db):
    CommunicationFactory.create_batch(3)

    assert EstimatedCountPaginator(Communication.objects.all(), 50).count == 3
    assert EstimatedCountPaginator(Communication.objects.filter(status="open"), 50).count == 3


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the row estimate is read from PostgreSQL's pg_class"
)
@pytest.mark.database_owner  # ANALYZE is the owner's
def test_paginator_reads_the_planner_estimate_for_an_unfiltered_big_table(db, monkeypatch):
    CommunicationFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inbox_communication")
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_threshold", 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'inbox_communication'::regclass")
        estimate = cursor.fetchone()[0]

    assert EstimatedCountPaginator(Communication.objects.all(), 50).count == estimate
    assert EstimatedCountPaginator(Communication.objects.filter(status="closed"), 50).count == 0


def test_non_staff_user_is_sent_to_the_admin_login(client, db):
    nurse = UserFactory(is_staff=False)
    client.force_login(nurse)

    index = client.get("/admin/")
    changelist = client.get(_url(Communication, "changelist"))

    assert index.status_code == 302
    assert index.url.startswith(reverse("admin:login"))
    assert changelist.status_code == 302
    assert changelist.url.startswith(reverse("admin:login"))


def test_anonymous_visitor_is_sent_to_the_admin_login(client, db):
    response = client.get(_url(AuditEvent, "changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
