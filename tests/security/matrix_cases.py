"""The access matrix's case registry: for every named URL pattern (and every WebSocket route), how to build its
arguments from a seeded world and what anonymous visitors, a user without access to the patient, and a user with
access must get. ``tests/security/test_access_matrix.py`` fails for any resolvable name missing here, so a new URL
is never left untested.

Expectations (``Expect``): a set of allowed status codes, plus for redirects where they must point. "Granted" means
the request got through to the view: not a login redirect, not 401/403/404, not a server error (a 400/405/409/422 for
an empty form is the view answering). Every anonymous and outsider response is also searched for the patient's name,
phone and email."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

LOGIN = "login"  # 302 to the sign-in page
ADMIN_LOGIN = "admin-login"  # 302 to the Django admin sign-in page
GRANTED = "granted"

PATIENT_FIRST, PATIENT_LAST = "Zelda", "Quintanilla"
PATIENT_EMAIL = "zelda.quintanilla@mail.example"
PATIENT_PHONE = "+15550100777"
PATIENT_DATA = (PATIENT_FIRST, PATIENT_LAST, PATIENT_EMAIL, PATIENT_PHONE, "(555) 010-0777", "555-010-0777")


@dataclass
class Case:
    """How to call one URL name, and what each kind of caller gets.

    ``member`` names the world's user with access (``nurse``, ``designer``, ``administrator``, ``superuser``, ``api``,
    or ``token``/``public`` for patient-facing and public URLs); ``outsider`` the one without (``outsider``: the
    shared front-desk user; ``api_outsider``: holds Inbox API but is on nobody's care team; ``other_token``: a valid
    link for another patient)."""

    kwargs: Callable = lambda w: {}
    method: str = "get"
    data: Callable | None = None
    anonymous: object = LOGIN
    outsider: object = frozenset({404})
    member: object = GRANTED
    member_user: str = "nurse"
    outsider_user: str = "outsider"
    anonymous_kwargs: Callable | None = None  # patient-facing: an invalid token
    outsider_kwargs: Callable | None = None  # patient-facing: another patient's link
    headers: Callable | None = None  # member request headers (signed hooks)
    note: str = ""


S = frozenset


def comm(w):
    return {"pk": w.communication.pk}


def patient_kw(w):
    return {"pk": w.patient.pk}


# --- Care Portal ------------------------------------------------------------------------------------------------

CASES: dict[str, Case] = {
    "careportal:home": Case(outsider=S({200}), note="everyone's home page; shows no patient of others"),
    "careportal:inbox": Case(),
    "careportal:communication_new": Case(),
    "careportal:communication": Case(kwargs=comm),
    "careportal:communication_row": Case(kwargs=comm),
    "careportal:communication_header": Case(kwargs=comm),
    "careportal:communication_messages": Case(kwargs=comm),
    "careportal:communication_reply": Case(kwargs=comm, method="post"),
    "careportal:communication_status": Case(kwargs=comm, method="post", data=lambda w: {"status": "closed"}),
    "careportal:communication_assign": Case(kwargs=comm, method="post"),
    "careportal:communication_link": Case(kwargs=comm),
    "careportal:communication_note": Case(kwargs=comm, method="post", data=lambda w: {"body": "note"}),
    "careportal:mention_options": Case(kwargs=comm),
    "careportal:template_fill": Case(
        kwargs=lambda w: {"pk": w.communication.pk, "template_pk": w.template.pk}
    ),
    "careportal:attachment_download": Case(
        kwargs=lambda w: {"pk": w.communication.pk, "attachment_pk": w.attachment.pk}
    ),
    "careportal:inbox_folder": Case(kwargs=lambda w: {"inbox": "my", "folder": "assigned"}),
    "careportal:inbox_rows": Case(kwargs=lambda w: {"inbox": "my", "folder": "assigned"}),
    "careportal:inbox_counts": Case(kwargs=lambda w: {"inbox": "my", "folder": "assigned"}),
    "careportal:chat_invite": Case(kwargs=patient_kw, method="post"),
    "careportal:patients": Case(),
    "careportal:patient_detail": Case(kwargs=patient_kw),
    "careportal:patient_panel": Case(kwargs=patient_kw),
    "careportal:patient_edit": Case(kwargs=patient_kw, member_user="lead"),
    "careportal:patient_communications": Case(kwargs=patient_kw),
    "careportal:encounter_detail": Case(
        kwargs=lambda w: {"pk": w.patient.pk, "encounter_pk": w.encounter.pk}
    ),
    # Notifications: the list is the user's own (an outsider's is empty); one notification is its owner's only.
    "careportal:notifications": Case(outsider=S({200, 404})),
    "careportal:notifications_read_all": Case(method="post", outsider=S({200, 204, 302, 404})),
    "careportal:notification_read": Case(kwargs=lambda w: {"pk": w.notification.pk}, method="post"),
    "careportal:notification_open": Case(kwargs=lambda w: {"pk": w.notification.pk}),
    # --- Sign-in and the project's own endpoints -----------------------------------------------------------------
    "login": Case(anonymous=S({200}), outsider=S({302}), member=S({302}), note="signed-in users are sent on"),
    "logout": Case(method="post", anonymous=S({302}), outsider=S({302}), member=S({302})),
    "session_status": Case(anonymous=S({200}), outsider=S({200}), member=S({200}), note="own session only"),
    "healthz": Case(anonymous=S({200}), outsider=S({200}), member=S({200})),
    "readyz": Case(anonymous=S({200, 503}), outsider=S({200, 503}), member=S({200, 503})),
    # --- Provider webhooks: a signature, never a session ----------------------------------------------------------
    "hooks:email_inbound": Case(
        method="post",
        anonymous=S({403}),
        outsider=S({403}),
        member_user="public",
        member=S({200}),
        headers=lambda w: w.signed_email_hook(),
    ),
    "hooks:twilio_sms": Case(
        method="post",
        anonymous=S({403}),
        outsider=S({403}),
        member_user="public",
        member=S({200}),
        headers=lambda w: w.signed_twilio("/hooks/sms/twilio/"),
    ),
    "hooks:twilio_status": Case(
        method="post",
        anonymous=S({403}),
        outsider=S({403}),
        member_user="public",
        member=S({200}),
        headers=lambda w: w.signed_twilio("/hooks/sms/twilio/status/"),
    ),
    # --- The demo's patient simulator: does not exist outside demo mode (the tests run with it off); in demo mode
    # tests/careportal/test_simulator.py tries it as anonymous, as a nurse off the team and as the nurse.
    **{
        f"simulator:{name}": Case(
            method=method, anonymous=S({404}), outsider=S({404}), member=S({404}), note="demo mode only"
        )
        for name, method in (
            ("page", "get"),
            ("threads", "get"),
            ("sms", "post"),
            ("email", "post"),
            ("chat", "post"),
        )
    },
}

# --- Patient-facing pages: the signed link is the credential ------------------------------------------------------


def _token_case(
    area: str, name: str, *, method="get", attachment=False, outsider=S({200, 302, 400, 404, 410})
):
    def kwargs(w, token):
        values = {"token": token}
        if attachment:
            values["attachment_pk"] = w.secure_attachment.pk if area == "secure" else w.chat_attachment.pk
        return values

    token_of = (lambda w: w.secure_token) if area == "secure" else (lambda w: w.chat_token)
    other_of = (lambda w: w.other_secure_token) if area == "secure" else (lambda w: w.other_chat_token)
    return Case(
        kwargs=lambda w: kwargs(w, token_of(w)),
        anonymous_kwargs=lambda w: kwargs(w, "not-a-valid-link"),
        outsider_kwargs=lambda w: kwargs(w, other_of(w)),
        method=method,
        anonymous=S({404}),
        # A file of this patient through another patient's link: 404 (or, before that link is verified, the
        # redirect to verify it — its own page, which shows nothing of this patient).
        outsider=S({302, 404}) if attachment and area == "secure" else S({404}) if attachment else outsider,
        member_user="token",
        member=GRANTED,
        note=f"{area} link: invalid → 404; another patient's link shows nothing of this patient",
    )


CASES.update(
    {
        "secure:start": _token_case("secure", "start"),
        "secure:send_code": _token_case("secure", "send_code", method="post"),
        "secure:verify": _token_case("secure", "verify", method="post"),
        "secure:thread": _token_case("secure", "thread"),
        "secure:reply": _token_case("secure", "reply", method="post"),
        "secure:attachment": _token_case("secure", "attachment", attachment=True),
        "secure:sign_out": _token_case("secure", "sign_out", method="post"),
        "chat:page": _token_case("chat", "page"),
        "chat:send": _token_case("chat", "send", method="post"),
        "chat:attachment": _token_case("chat", "attachment", attachment=True),
    }
)

# --- Designer and Admin Portal: policy holders only (403 otherwise) -----------------------------------------------

_DESIGNER = {
    "designer:home": ({}, "get"),
    "designer:version": ({"number": "published_number"}, "get"),
    "designer:version_restore": ({"number": "published_number"}, "post"),
    "designer:draft": ({}, "get"),
    "designer:draft_open": ({}, "post"),
    "designer:draft_publish": ({}, "post"),
    "designer:draft_discard": ({}, "post"),
    "designer:role_new": ({}, "get"),
    "designer:role_edit": ({"key": "role_key"}, "get"),
    "designer:role_remove": ({"key": "role_key"}, "post"),
    "designer:template_new": ({}, "get"),
    "designer:template_preview": ({}, "post"),
    "designer:template_edit": ({"key": "template_key"}, "get"),
    "designer:template_remove": ({"key": "template_key"}, "post"),
}
_ADMINPORTAL = {
    "adminportal:home": ({}, "get"),
    "adminportal:users": ({}, "get"),
    "adminportal:user_new": ({}, "get"),
    "adminportal:user_detail": ({"pk": "staff_pk"}, "get"),
    "adminportal:user_deactivate": ({"pk": "staff_pk"}, "post"),
    "adminportal:user_deactivated": ({"pk": "staff_pk"}, "get"),
    "adminportal:user_reactivate": ({"pk": "staff_pk"}, "post"),
    "adminportal:user_invite": ({"pk": "staff_pk"}, "post"),
    "adminportal:grant_add": ({"pk": "staff_pk"}, "post"),
    "adminportal:grant_search": ({"pk": "staff_pk"}, "get"),
    "adminportal:grant_remove": ({"pk": "staff_pk", "patient_pk": "patient_pk"}, "post"),
    "adminportal:settings": ({}, "get"),
    "adminportal:setting_update": ({"key": "setting_key"}, "post"),
    "adminportal:lines": ({}, "get"),
    "adminportal:line_edit": ({"pk": "line_pk"}, "get"),
    "adminportal:line_sender_add": ({"pk": "line_pk"}, "post"),
    "adminportal:line_sender_remove": ({"pk": "line_pk", "user_pk": "staff_pk"}, "post"),
    "adminportal:addresses": ({}, "get"),
    "adminportal:address_edit": ({"pk": "address_pk"}, "get"),
    "adminportal:audit": ({}, "get"),
    "adminportal:audit_export": ({}, "get"),
    "adminportal:ingestion": ({}, "get"),
    "adminportal:ingestion_reprocess": ({"pk": "raw_pk"}, "post"),
    "adminportal:integrations": ({}, "get"),
    "adminportal:token_create": ({}, "post"),
    "adminportal:token_revoke": ({"pk": "token_pk"}, "post"),
    "adminportal:webhook_create": ({}, "post"),
    "adminportal:webhook_detail": ({"pk": "webhook_pk"}, "get"),
    "adminportal:webhook_resume": ({"pk": "webhook_pk"}, "post"),
    "adminportal:webhook_toggle": ({"pk": "webhook_pk"}, "post"),
}


def _from_world(spec: dict) -> Callable:
    return lambda w: {name: getattr(w, attribute) for name, attribute in spec.items()}


for _name, (_spec, _method) in _DESIGNER.items():
    CASES[_name] = Case(kwargs=_from_world(_spec), method=_method, outsider=S({403}), member_user="designer")
for _name, (_spec, _method) in _ADMINPORTAL.items():
    CASES[_name] = Case(
        kwargs=_from_world(_spec), method=_method, outsider=S({403}), member_user="administrator"
    )
CASES["adminportal:invite_accept"] = Case(
    kwargs=lambda w: {"uidb64": "MQ", "token": "set-password"},
    anonymous=S({200}),
    outsider=S({200}),
    member=S({200}),
    member_user="public",
    note="public: an invalid invitation says so",
)
CASES["adminportal:invite_done"] = Case(
    anonymous=S({200}), outsider=S({200}), member=S({200}), member_user="public"
)

# --- Inbox API: bearer tokens (or the portal session) of Inbox API holders -----------------------------------------

_API = {
    "api:inboxes": ({}, "get", S({200})),
    "api:folder": ({"inbox": "my", "folder": "assigned"}, "get", S({200})),
    "api:communication": (comm, "get", S({404})),
    "api:attachment": (
        lambda w: {"pk": w.communication.pk, "attachment_id": w.attachment.pk},
        "get",
        S({404}),
    ),
    "api:send": (comm, "post", S({404})),
    "api:status": (comm, "post", S({404})),
    "api:assign": (comm, "post", S({404})),
    "api:assignees": (comm, "get", S({404})),
    "api:link": (comm, "post", S({404})),
    "api:patients": ({}, "get", S({200})),
    "api:sending_lines": ({}, "get", S({200})),
    "api:templates": ({}, "get", S({200})),
}
for _name, (_spec, _method, _outsider) in _API.items():
    CASES[_name] = Case(
        kwargs=_spec if callable(_spec) else (lambda spec: lambda w: dict(spec))(_spec),
        method=_method,
        anonymous=S({401}),
        outsider=_outsider,
        outsider_user="api_outsider",
        member_user="api",
    )
CASES["api:not_found"] = Case(
    kwargs=lambda w: {}, anonymous=S({401, 404}), outsider=S({404}), member=S({404}), member_user="api",
    outsider_user="api_outsider", note="catch-all: unknown API addresses are 404 problems",
)  # fmt: skip
CASES["api:schema"] = Case(anonymous=S({401, 403}), outsider=S({200}), member=S({200}), member_user="api")
CASES["api:docs"] = Case(
    anonymous=S({200, 302, 401, 403}), outsider=S({200}), member=S({200}), member_user="api"
)


# --- Django admin: staff only; everyone else is sent to the admin sign-in ---------------------------------------


def admin_case(name: str) -> Case | None:
    """Every ``admin:`` name follows one rule, built from its pattern's arguments."""
    if not name.startswith("admin:"):
        return None
    if name == "admin:login":
        return Case(anonymous=S({200}), outsider=S({200}), member=S({302}), member_user="superuser")
    if name == "admin:view_on_site":  # the superuser is sent to the object's page; a patient has none (404)
        return Case(
            kwargs=lambda w: w.admin_kwargs(name), anonymous=ADMIN_LOGIN, outsider=ADMIN_LOGIN,
            member=S({302, 404}), member_user="superuser",
        )  # fmt: skip
    if name == "admin:logout":
        return Case(method="post", anonymous=S({200, 302}), outsider=S({200, 302}), member=S({200, 302}),
                    member_user="superuser")  # fmt: skip
    return Case(
        kwargs=lambda w, name=name: w.admin_kwargs(name),
        anonymous=ADMIN_LOGIN,
        outsider=ADMIN_LOGIN,
        member=S({200, 302, 403}),  # the superuser reaches the view (403: a model that forbids adding)
        member_user="superuser",
    )


def case_for(name: str) -> Case | None:
    return CASES.get(name) or admin_case(name)


# --- WebSocket routes (inbox_project/asgi.py → careportal.routing) ------------------------------------------------

WEBSOCKET_CASES = {
    "ws/portal/": "anonymous closed 4401; an outsider joins no group of the patient and receives no frame about them",
    "ws/chat/<str:token>/": "a forged link closed 4403; another patient's link receives no frame about this patient",
}


@dataclass
class World:
    """The seeded world every case builds its arguments from."""

    patient: object
    other_patient: object
    communication: object
    attachment: object
    template: object
    encounter: object
    notification: object
    secure_token: str
    other_secure_token: str
    secure_attachment: object
    chat_token: str
    other_chat_token: str
    chat_attachment: object
    published_number: int
    role_key: str
    template_key: str
    staff_pk: int
    patient_pk: int
    setting_key: str
    line_pk: int
    address_pk: int
    raw_pk: int
    token_pk: int
    webhook_pk: int
    admin_objects: dict = field(default_factory=dict)

    def admin_kwargs(self, name: str) -> dict:
        # Model admin object URLs take object_id; the rest take their own names.
        label = name.split(":", 1)[1]
        if label == "view_on_site":
            from django.contrib.contenttypes.models import ContentType

            from careportal.models import Patient

            return {
                "content_type_id": ContentType.objects.get_for_model(Patient).pk,
                "object_id": self.patient.pk,
            }
        if label == "app_list":
            return {"app_label": "inbox"}
        if label == "auth_user_password_change":
            return {"id": self.staff_pk}
        if label.endswith(("_change", "_delete", "_history")) and label not in ("password_change",):
            model_key = label.rsplit("_", 1)[0]
            return {"object_id": self.admin_objects.get(model_key, 999_999)}
        return {}

    def signed_email_hook(self) -> dict:
        import hmac

        from django.conf import settings

        body = b"From: someone@mail.example\r\nTo: care@clinic.example\r\nSubject: hi\r\nMessage-ID: <m1@x>\r\n\r\nHello"
        digest = hmac.new(settings.INBOUND_EMAIL_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {"data": body, "content_type": "message/rfc822", "HTTP_X_INBOX_SIGNATURE": f"sha256={digest}"}

    def signed_twilio(self, path: str) -> dict:
        from django.conf import settings
        from twilio.request_validator import RequestValidator

        params = {"MessageSid": "SMmatrix", "From": "+15550100999", "To": "+15550109999", "Body": "Hi", "NumMedia": "0",
                  "MessageStatus": "delivered"}  # fmt: skip
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(
            f"http://testserver{path}", params
        )
        return {"data": params, "HTTP_X_TWILIO_SIGNATURE": signature}


def build_world(*, nurse, api_user) -> World:
    """Patient Zelda Quintanilla on the nurse's care team with an email conversation (an inbound message with a
    file, a secure reply with a file), a chat with a file, an encounter, a notification for the nurse; another
    patient with their own secure message and chat; one of everything the Admin Portal and Django admin edit."""
    from django.contrib.auth.models import Group

    from adminportal.models import FeatureSetting
    from careportal.chat import make_chat_token
    from designer.models import ConfigVersion
    from designer.services import open_draft
    from inbox.secure import make_token
    from tests import factories as f

    patient = f.PatientFactory(first_name=PATIENT_FIRST, last_name=PATIENT_LAST)
    f.PatientContactMethodFactory(patient=patient, kind="email", value=PATIENT_EMAIL)
    f.PatientContactMethodFactory(patient=patient, kind="phone", value=PATIENT_PHONE)
    f.CareTeamMemberFactory(patient=patient, user=nurse, is_primary_contact=True)
    line = f.SendingLineFactory(number="+15550109999")
    address = f.InboundAddressFactory(address="care@clinic.example")
    communication = f.CommunicationFactory(
        patient=patient, counterpart=PATIENT_EMAIL, assignee=nurse, subject="Quintanilla lab results"
    )
    inbound = f.MessageFactory(
        communication=communication, sender_name=f"{PATIENT_FIRST} {PATIENT_LAST}", sender_address=PATIENT_EMAIL,
        body_text=f"{PATIENT_FIRST} {PATIENT_LAST} writes from {PATIENT_PHONE}",
    )  # fmt: skip
    attachment = f.AttachmentFactory(message=inbound, filename="quintanilla-labs.pdf")
    secure_message = f.SecureMessageFactory(
        communication=communication, author=nurse, recipient_address=PATIENT_EMAIL
    )
    secure_attachment = f.AttachmentFactory(message=secure_message, filename="quintanilla-report.pdf")

    chat = f.ChatCommunicationFactory(patient=patient)
    chat_reply = f.MessageFactory(communication=chat, direction="out", author=nurse, body_text="Hello Zelda")
    chat_attachment = f.AttachmentFactory(message=chat_reply, filename="quintanilla-chat.pdf")

    other = f.PatientFactory(first_name="Olaf", last_name="Other")
    f.PatientContactMethodFactory(patient=other, kind="email", value="olaf.other@mail.example")
    other_communication = f.CommunicationFactory(patient=other, counterpart="olaf.other@mail.example")
    other_secure = f.SecureMessageFactory(
        communication=other_communication, author=nurse, recipient_address="olaf.other@mail.example"
    )

    version = ConfigVersion.objects.get(status="published")
    template = f.MessageTemplateFactory(
        version=version, key="follow-up", name="Follow-up", body="Hi {{ first_name }}"
    )
    designer_user = f.UserFactory(username="matrix-designer", role="designer")
    draft, _ = open_draft(user=designer_user) if _has_role(version, "designer") else (None, None)
    encounter = f.EncounterFactory(patient=patient)
    notification = _notification(nurse, communication, inbound)
    raw = f.RawInboundFactory(raw=b"From: x\r\n\r\nHi")
    staff = f.UserFactory(username="matrix-staff", role="care-nurse")
    token_pk, webhook_pk = _integration_rows(api_user)
    group = Group.objects.create(name="Matrix")
    setting_key = FeatureSetting.Key.SESSION_IDLE_TIMEOUT.value if hasattr(FeatureSetting, "Key") else "x"

    admin_objects = {
        "auth_group": group.pk,
        "adminportal_user": staff.pk,
        "careportal_patient": patient.pk,
        "inbox_communication": communication.pk,
        "inbox_message": inbound.pk,
        "inbox_attachment": attachment.pk,
        "careportal_encounter": encounter.pk,
        "inbox_sendingline": line.pk,
        "inbox_inboundaddress": address.pk,
        "inbox_rawinbound": raw.pk,
        "designer_configversion": version.pk,
        "designer_messagetemplate": template.pk,
    }
    admin_objects["inbox_notification"] = notification.pk

    return World(
        patient=patient,
        other_patient=other,
        communication=communication,
        attachment=attachment,
        template=template,
        encounter=encounter,
        notification=notification,
        secure_token=make_token(secure_message),
        other_secure_token=make_token(other_secure),
        secure_attachment=secure_attachment,
        chat_token=make_chat_token(patient),
        other_chat_token=make_chat_token(other),
        chat_attachment=chat_attachment,
        published_number=version.number,
        role_key="care-nurse",
        template_key=draft.templates.first().key
        if draft is not None and draft.templates.exists()
        else "follow-up",
        staff_pk=staff.pk,
        patient_pk=patient.pk,
        setting_key=setting_key,
        line_pk=line.pk,
        address_pk=address.pk,
        raw_pk=raw.pk,
        token_pk=token_pk,
        webhook_pk=webhook_pk,
        admin_objects=admin_objects,
    )


def _has_role(version, key: str) -> bool:
    return version.roles.filter(key=key).exists()


def _notification(nurse, communication, message):
    from tests.factories import NotificationFactory

    return NotificationFactory(
        user=nurse, communication=communication, text=f"New message from {PATIENT_FIRST}"
    )


def _integration_rows(user) -> tuple[int, int]:
    """An API token and a webhook subscription (the Admin Portal's Integrations page), when that feature exists."""
    try:
        from adminportal.models import WebhookSubscription
        from inbox.api.tokens import create_token
    except ImportError:
        return 999_999, 999_999
    token, _raw = create_token(actor=None, user=user, name="matrix")
    subscription = WebhookSubscription.objects.create(
        user=user, name="matrix", url="https://hooks.clinic.example/care",
        event_types=["communication.created"], secret="s" * 32,
    )  # fmt: skip
    return token.pk, subscription.pk


__all__ = ["ADMIN_LOGIN", "CASES", "GRANTED", "LOGIN", "PATIENT_DATA", "WEBSOCKET_CASES", "Case"]
