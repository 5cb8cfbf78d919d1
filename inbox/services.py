"""State changes of the Inbox: one function per user action, each in a transaction with its audit event,
publishing the real-time hint and queuing delivery only after commit (DESIGN.md: Status, Recognition and linking,
Reply box)."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from careportal.access import can_view_communication, can_view_patient
from careportal.models import Contact, ContactKind, Document, Patient, PatientContactMethod

from . import audit, events, notifications, uploads
from .errors import ConversationChanged, NotPermitted, ReplyNotAllowed, UnlinkedRecipientNotConfirmed
from .models import Attachment, Channel, Communication, Message, SendingLine
from .sanitize import clean_html, html_to_text, text_to_html
from .selectors import assignee_candidates, can_send_from_line, changes_since, normalize_phone

Action = audit.Action
PREVIEW_LENGTH = 200
ALLOWED_UPLOAD_TYPES = set(uploads.UPLOAD_TYPES)  # one list: inbox/uploads.py
SMS_MAX_LENGTH = 1600


@dataclass(frozen=True)
class ReplyContent:
    """What the reply box submits."""

    body: str = ""
    body_html: str = ""
    subject: str = ""
    is_secure: bool = False
    sending_line: SendingLine | None = None
    document_ids: tuple[int, ...] = ()
    uploads: tuple[UploadedFile, ...] = ()


def _require_visible(user, communication: Communication) -> None:
    if not can_view_communication(user, communication):
        raise NotPermitted("You do not have access to this communication.")


def _lock(communication: Communication) -> Communication:
    return Communication.objects.select_for_update().get(pk=communication.pk)


def new_email_message_id() -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "careinbox.local"
    return f"<{uuid.uuid4().hex}@{domain}>"


def _touch_last_message(communication: Communication, message: Message) -> list[str]:
    communication.last_message_at = message.created_at
    communication.last_message_preview = (message.body_text or html_to_text(message.body_html))[
        :PREVIEW_LENGTH
    ]
    communication.last_message_direction = message.direction
    return ["last_message_at", "last_message_preview", "last_message_direction"]


def apply_inbound(
    communication: Communication,
    message: Message,
    *,
    save: bool = True,
    primary_contacts: dict[int, set[int]] | None = None,
) -> list[str]:
    """Any inbound message sets the communication Open, even when it was Closed (shared with ingestion).

    Auto-replies (``Auto-Submitted``) are stored but do not reopen. Returns the fields it changed; with
    ``save=False`` the caller saves them (batch ingestion saves each communication once per batch).
    """
    fields = _touch_last_message(communication, message)
    if not message.is_auto_reply and communication.status != Communication.Status.OPEN:
        communication.status = Communication.Status.OPEN
        communication.opened_at = message.created_at
        communication.closed_at = None
        fields += ["status", "opened_at", "closed_at"]
    if save:
        communication.save(update_fields=[*fields, "updated_at"])
    notifications.notify_inbound(communication, message, primary_contacts=primary_contacts)
    return fields


def _change_status(communication: Communication, status: str) -> list[str]:
    if communication.status == status:
        return []
    now = timezone.now()
    communication.status = status
    if status == Communication.Status.OPEN:
        communication.opened_at, communication.closed_at = now, None
    else:
        communication.closed_at = now
    return ["status", "opened_at", "closed_at"]


def validate_upload(upload: UploadedFile) -> uploads.CheckedFile:
    """Size, type allow-list, extension and content sniffing (``inbox.uploads.check_upload``)."""
    try:
        return uploads.check_upload(upload)
    except uploads.UploadRejected as exc:
        raise ReplyNotAllowed(str(exc)) from None


def _attach(*, user, message: Message, patient: Patient, content: ReplyContent) -> None:
    documents = list(Document.objects.filter(patient=patient, pk__in=content.document_ids))
    if len(documents) != len(set(content.document_ids)):
        raise ReplyNotAllowed("One of the chosen documents does not belong to this patient.")
    for upload in content.uploads:  # validated by _check_can_reply before anything was written
        checked = validate_upload(upload)
        upload.name = checked.name
        documents.append(
            Document.objects.create(
                patient=patient,
                name=checked.name,
                file=upload,
                content_type=checked.content_type,
                size=upload.size,
                uploaded_by=user,
            )
        )
    Attachment.objects.bulk_create(
        Attachment(message=message, document=d, filename=d.name, content_type=d.content_type, size=d.size)
        for d in documents
    )


def _reply_recipient(communication: Communication) -> str:
    if communication.contact_id:
        contact = communication.contact
        return (
            contact.phone if communication.channel == Channel.SMS else contact.email
        ) or communication.counterpart
    return communication.counterpart


def _check_line_allowed(user, communication: Communication, content: ReplyContent) -> None:
    """An SMS goes out only on a line the user may send from (``inbox.selectors.sending_lines_usable_by``)."""
    line = communication.sending_line or content.sending_line
    if communication.channel == Channel.SMS and line is not None and not can_send_from_line(user, line):
        raise NotPermitted(
            f"You may not send from the line {line.display_name}: an administrator has limited who may use it."
        )


def _check_unlinked_reply(communication: Communication, content: ReplyContent, *, confirmed: bool) -> None:
    """A reply to a sender linked to no patient goes only behind an explicit confirmation naming the recipient (the
    raw address or number), and carries nothing that needs a patient: no patient documents or uploads (they would
    become a patient's documents), no secure email (its one-time code goes to a patient's address on file)."""
    if not confirmed:
        raise UnlinkedRecipientNotConfirmed(communication.counterpart)
    if content.document_ids or content.uploads:
        raise ReplyNotAllowed(
            "Attachments are the patient's documents: link this communication to a patient to attach files."
        )
    if content.is_secure:
        raise ReplyNotAllowed(
            "A secure email needs a patient: its reader proves who they are by a code sent to the patient's address "
            "on file. Link this communication to a patient, or send an ordinary email."
        )


def _check_can_reply(communication: Communication, content: ReplyContent) -> None:
    if not (
        content.body.strip() or html_to_text(content.body_html) or content.document_ids or content.uploads
    ):
        raise ReplyNotAllowed("Write a message or attach a file before sending.")
    for upload in content.uploads:
        validate_upload(upload)
    if content.is_secure and not communication.is_email:
        raise ReplyNotAllowed("Secure messages can only be sent by email.")
    if communication.channel == Channel.SMS:
        if len(content.body) > SMS_MAX_LENGTH:
            raise ReplyNotAllowed(f"An SMS can hold at most {SMS_MAX_LENGTH} characters.")
        opted_out = (
            PatientContactMethod.objects.filter(
                kind=ContactKind.PHONE, value=_reply_recipient(communication), is_opted_out=True
            ).exists()
            or Contact.objects.filter(phone=_reply_recipient(communication), is_opted_out=True).exists()
        )
        if opted_out:
            raise ReplyNotAllowed(
                "This number has opted out of SMS (STOP). It cannot be texted until it sends START."
            )


@dataclass(frozen=True)
class Seen:
    """What the writer saw of the communication when they wrote: its newest message, status and assignee."""

    last_message_id: int | None
    status: str = ""
    assignee_id: int | None = None


@transaction.atomic(durable=True)
def send_reply(
    *,
    user,
    communication: Communication,
    content: ReplyContent,
    close: bool = True,
    seen: Seen | None = None,
    confirm_unlinked_recipient: bool = False,
    request=None,
) -> Message:
    """Send a reply: stores the outbound message, hands delivery to Celery after commit.

    "Send and Close" is the default (``close=True``); "Send and keep Open" leaves it Open (reopening it if it was
    Closed). On an Unrecognized communication it is refused (``UnlinkedRecipientNotConfirmed``) unless the writer
    confirmed sending to the raw sender address or number (``confirm_unlinked_recipient``); such a reply is text
    only, and its audit event names the unlinked recipient. No overlapping replies:
    with ``seen``, the send is refused (``ConversationChanged``, nothing sent) when others wrote in or changed the
    communication since — checked under the communication's lock, so of two writers who saw the same state and
    send at once, exactly one reply goes out.
    """
    _require_visible(user, communication)
    communication = _lock(communication)
    if seen is not None:
        changes = changes_since(
            user=user, communication=communication, last_message_id=seen.last_message_id, status=seen.status,
            assignee_id=seen.assignee_id,
        )  # fmt: skip
        if changes:
            raise ConversationChanged(changes)
    _check_line_allowed(user, communication, content)
    is_unlinked = communication.is_unrecognized
    if is_unlinked:
        _check_unlinked_reply(communication, content, confirmed=confirm_unlinked_recipient)
    _check_can_reply(communication, content)
    message = _create_outbound(user=user, communication=communication, content=content)
    fields = _touch_last_message(communication, message)
    if content.sending_line and communication.channel == Channel.SMS and not communication.sending_line_id:
        communication.sending_line = content.sending_line
        fields.append("sending_line")
    status_fields = _change_status(
        communication, Communication.Status.CLOSED if close else Communication.Status.OPEN
    )
    communication.save(update_fields=[*fields, *status_fields, "updated_at"])
    audit.record(
        actor=user,
        action=Action.MESSAGE_SENT,
        request=request,
        communication=communication,
        obj=message,
        detail={
            "channel": communication.channel, "secure": message.is_secure, "close": close,
            # A reply to a sender no patient's record holds, sent after the writer confirmed this recipient.
            **({"unlinked_recipient": message.recipient_address} if is_unlinked else {}),
        },
    )  # fmt: skip
    if status_fields:
        audit.record(
            actor=user, action=Action.STATUS_CHANGED, request=request, communication=communication,
            detail={"status": communication.status, "via": "send"},
        )  # fmt: skip
    _queue_delivery(message)
    events.publish_communication_changed(communication, kind="message")
    return message


def _create_outbound(*, user, communication: Communication, content: ReplyContent) -> Message:
    body_html = clean_html(content.body_html) if communication.is_email and content.body_html else ""
    body_text = content.body.strip() or html_to_text(body_html)
    if communication.is_email and not body_html and body_text:
        body_html = text_to_html(body_text)
    headers = {}
    if communication.is_email:
        thread = list(
            communication.messages.exclude(email_message_id="").order_by("-created_at", "-id")
            .values_list("email_message_id", "references")[:1]
        )  # fmt: skip
        headers["email_message_id"] = new_email_message_id()
        if thread:
            parent_id, parent_refs = thread[0]
            headers["in_reply_to"] = parent_id
            headers["references"] = " ".join([*parent_refs.split(), parent_id][-20:])
    line = communication.sending_line or content.sending_line
    message = Message.objects.create(
        communication=communication,
        direction=Message.Direction.OUTBOUND,
        author=user,
        sender_address=line.number if communication.channel == Channel.SMS and line else "",
        recipient_address=_reply_recipient(communication),
        subject=(content.subject or communication.subject)[:255] if communication.is_email else "",
        body_text=body_text,
        body_html=body_html,
        is_secure=content.is_secure,
        provider=Message.Provider.PORTAL,
        delivery_status=Message.DeliveryStatus.QUEUED,
        **headers,
    )
    if communication.patient_id:
        _attach(user=user, message=message, patient=communication.patient, content=content)
    return message


def _queue_delivery(message: Message) -> None:
    from .tasks import deliver_message

    transaction.on_commit(lambda: deliver_message.delay(message.pk))


@transaction.atomic(durable=True)
def set_status(*, user, communication: Communication, status: str, request=None) -> Communication:
    """The status can be changed by hand at any time."""
    if status not in Communication.Status.values:
        raise ReplyNotAllowed(f"Unknown status {status!r}.")
    _require_visible(user, communication)
    communication = _lock(communication)
    fields = _change_status(communication, status)
    if fields:
        communication.save(update_fields=[*fields, "updated_at"])
        audit.record(
            actor=user, action=Action.STATUS_CHANGED, request=request, communication=communication,
            detail={"status": status, "via": "manual"},
        )  # fmt: skip
        events.publish_communication_changed(communication, kind="status")
    return communication


@transaction.atomic(durable=True)
def assign(*, user, communication: Communication, assignee=None, request=None) -> Communication:
    """Assign, reassign or unassign (``assignee=None``). The assignee must be able to see the patient."""
    _require_visible(user, communication)
    communication = _lock(communication)
    if assignee is not None and not assignee_candidates(communication).filter(pk=assignee.pk).exists():
        raise NotPermitted(f"{assignee.full_name} cannot be assigned: they have no access to this patient.")
    previous_id = communication.assignee_id
    if previous_id == (assignee.pk if assignee else None):
        return communication
    communication.assignee = assignee
    communication.save(update_fields=["assignee", "updated_at"])
    audit.record(
        actor=user, action=Action.ASSIGNMENT_CHANGED, request=request, communication=communication,
        detail={"from": previous_id, "to": assignee.pk if assignee else None},
    )  # fmt: skip
    notifications.notify_assigned(communication, assignee, actor=user)
    events.publish_communication_changed(communication, kind="assignment")
    return communication


@transaction.atomic(durable=True)
def link_to_patient(
    *, user, communication: Communication, patient: Patient, contact: Contact | None = None, remember: bool = False,
    request=None,
) -> Communication:  # fmt: skip
    """Link an Unrecognized communication to a patient (optionally one of their contacts); it becomes eligible for
    reply. ``remember`` adds the sender's address or number to the patient (or contact) so the next message is
    recognised. The candidates at the time of linking are kept in the audit trail."""
    _require_visible(user, communication)
    if not can_view_patient(user, patient):
        raise NotPermitted("You do not have access to that patient.")
    if contact is not None and contact.patient_id != patient.pk:
        raise NotPermitted("That contact does not belong to the chosen patient.")
    communication = _lock(communication)
    if not communication.is_unrecognized:
        raise ReplyNotAllowed("This communication is already linked to a patient.")
    candidates = sorted(communication.candidate_patients.values_list("pk", flat=True))
    communication.patient, communication.contact, communication.is_unrecognized = patient, contact, False
    communication.save(update_fields=["patient", "contact", "is_unrecognized", "updated_at"])
    remembered = _remember_counterpart(communication, patient, contact) if remember else ""
    audit.record(
        actor=user, action=Action.LINKED, request=request, communication=communication,
        detail={"candidates": candidates, "contact": contact.pk if contact else None, "remembered": remembered},
    )  # fmt: skip
    events.publish_communication_changed(communication, kind="link")
    return communication


def _remember_counterpart(communication: Communication, patient: Patient, contact: Contact | None) -> str:
    is_phone = communication.channel == Channel.SMS
    value = communication.counterpart if is_phone else communication.counterpart.lower()
    if is_phone:
        value = normalize_phone(value) or value
    if contact is not None:
        field = "phone" if is_phone else "email"
        if not getattr(contact, field):
            setattr(contact, field, value)
            contact.save(update_fields=[field])
            return value
        return ""
    _, created = PatientContactMethod.objects.get_or_create(
        patient=patient, kind=ContactKind.PHONE if is_phone else ContactKind.EMAIL, value=value,
        defaults={"label": "remembered"},
    )  # fmt: skip
    return value if created else ""


@transaction.atomic(durable=True)
def start_communication(
    *, user, patient: Patient, channel: str, content: ReplyContent, to: str = "", close: bool = False, request=None,
) -> Communication:  # fmt: skip
    """Start a new SMS (on a chosen sending line) or email to a visible patient from the Inbox."""
    if not can_view_patient(user, patient):
        raise NotPermitted("You do not have access to that patient.")
    if channel not in (Channel.SMS, Channel.EMAIL):
        raise ReplyNotAllowed("A new communication is an SMS or an email.")
    kind = ContactKind.PHONE if channel == Channel.SMS else ContactKind.EMAIL
    methods = set(patient.contact_methods.filter(kind=kind).values_list("value", flat=True))
    to = (normalize_phone(to) or to) if channel == Channel.SMS else to.strip().lower()
    if not to and methods:
        to = sorted(methods)[0]
    if to not in methods:
        raise ReplyNotAllowed(f"{to or 'The patient'} has no such {kind.label.lower()} on file.")
    if channel == Channel.SMS and (content.sending_line is None or not content.sending_line.is_active):
        raise ReplyNotAllowed("Pick an active sending line for the SMS.")
    if channel == Channel.SMS and not can_send_from_line(user, content.sending_line):
        raise NotPermitted(
            f"You may not send from the line {content.sending_line.display_name}: "
            "an administrator has limited who may use it."
        )
    if channel == Channel.SMS:
        existing = Communication.objects.filter(
            patient=patient, channel=Channel.SMS, sending_line=content.sending_line, contact__isnull=True
        ).first()
        if existing is not None:  # each sending line makes one communication with a patient
            communication = existing
        else:
            communication = Communication.objects.create(
                channel=channel, patient=patient, sending_line=content.sending_line, counterpart=to,
                status=Communication.Status.OPEN, opened_at=timezone.now(), assignee=user,
            )  # fmt: skip
    else:
        communication = Communication.objects.create(
            channel=channel, patient=patient, counterpart=to, subject=content.subject[:255],
            status=Communication.Status.OPEN, opened_at=timezone.now(), assignee=user,
        )  # fmt: skip
    audit.record(
        actor=user, action=Action.COMMUNICATION_CREATED, request=request, communication=communication
    )
    _check_can_reply(communication, content)
    message = _create_outbound(user=user, communication=communication, content=content)
    fields = _touch_last_message(communication, message)
    status_fields = _change_status(
        communication, Communication.Status.CLOSED if close else Communication.Status.OPEN
    )
    communication.save(update_fields=[*fields, *status_fields, "updated_at"])
    audit.record(
        actor=user, action=Action.MESSAGE_SENT, request=request, communication=communication, obj=message
    )
    _queue_delivery(message)
    events.publish_communication_changed(communication, kind="message")
    return communication


def record_view(*, user, communication: Communication, request=None) -> None:
    """Opening a communication writes an audit event."""
    audit.record(actor=user, action=Action.COMMUNICATION_VIEWED, request=request, communication=communication)


def record_download(*, user, attachment: Attachment, request=None) -> None:
    audit.record(
        actor=user, action=Action.ATTACHMENT_DOWNLOADED, request=request,
        communication=attachment.message.communication, obj=attachment,
    )  # fmt: skip


def documents_for_reply(patient: Patient) -> Iterable[Document]:
    return patient.documents.order_by("-created_at")[:50]


NOTE_MAX_LENGTH = 4000


@transaction.atomic(durable=True)
def add_internal_note(*, user, communication: Communication, body: str, request=None) -> Message:
    """Add a staff-only internal note to the conversation (DESIGN.md: Notifications).

    A note is never delivered (no delivery is queued; it has no delivery status) and never shown to the patient; it
    leaves the status alone and does not become the communication's last message (the list keeps showing what was
    said with the patient). Allowed on an Unrecognized communication: a note needs no patient. ``@username``
    mentions a colleague who can see the communication (they are notified); naming one who cannot is refused.
    """
    _require_visible(user, communication)
    text = (body or "").strip()
    if not text:
        raise ReplyNotAllowed("Write the note before adding it.")
    if len(text) > NOTE_MAX_LENGTH:
        raise ReplyNotAllowed(f"A note can hold at most {NOTE_MAX_LENGTH} characters.")
    communication = _lock(communication)
    mentioned = notifications.mentions_in(communication, text)
    message = Message.objects.create(
        communication=communication,
        direction=Message.Direction.OUTBOUND,
        author=user,
        body_text=text,
        body_html=notifications.note_html(text, mentioned),
        is_internal_note=True,
        provider=Message.Provider.PORTAL,
        delivery_status="",
    )
    audit.record(
        actor=user, action=Action.MESSAGE_SENT, request=request, communication=communication, obj=message,
        detail={"internal_note": True, "mentions": [u.pk for u in mentioned]},
    )  # fmt: skip
    notifications.notify_mentions(communication, message, mentioned, actor=user)
    events.publish_communication_changed(communication, kind="note")
    return message
