"""Live chat (DESIGN.md: Live chat): the signed link that opens a patient's chat page, the staff actions that make and
send it, and what the patient reads and writes on the page (business hours and the out-of-hours reply:
``careportal.chat_hours``).

The chat page and its WebSocket have no login: the signed token is the credential. It names the patient (and, when
the link went to one of their contacts, that contact) and expires after seven days. A patient's messages are stored
raw first and filed by the ingestion pipeline (``inbox.ingest.chat``); staff answer with the ordinary reply box.
"""

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import capfirst

from inbox import audit
from inbox.errors import InboxError, NotPermitted, ReplyNotAllowed
from inbox.models import Attachment, Channel, Communication, Message, RawInbound, SendingLine
from inbox.selectors import active_sending_lines
from inbox.services import ReplyContent, send_reply, start_communication

from .access import can_view_patient
from .models import Contact, ContactKind, Patient

SALT = "careportal.chat"
TOKEN_MAX_AGE = 7 * 24 * 3600  # a link works for a week
TOKEN_MAX_AGE_DAYS = TOKEN_MAX_AGE // (24 * 3600)
MAX_MESSAGE_CHARS = 4000
PATIENT_LABEL = "patient"  # who acted, in the audit log, for everything done on the chat page
VIA = "chat_page"
TEMPLATES = "careportal/chat/"


# --- Errors: ``str(error)`` is shown to the patient or the staff member --------------------------------------------


class ChatLinkInvalid(InboxError):
    def __init__(self, text: str = "This chat link is not valid."):
        super().__init__(text)


class ChatLinkExpired(ChatLinkInvalid):
    def __init__(self):
        super().__init__("This chat link has expired.")


class ChatMessageRefused(InboxError):
    """A patient message that cannot be accepted (empty, too long, malformed)."""


# --- The signed link ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatClaims:
    patient_id: int
    contact_id: int | None = None


def make_chat_token(patient: Patient, *, contact: Contact | None = None) -> str:
    """A signed, timestamped token naming the patient (and the contact the link is for). Nothing else goes in the
    URL: names and addresses stay out of browser history and proxy logs."""
    if contact is not None and contact.patient_id != patient.pk:
        raise ValueError("The contact does not belong to the patient.")
    claims = {"p": patient.pk} if contact is None else {"p": patient.pk, "c": contact.pk}
    return signing.dumps(claims, salt=SALT, compress=True)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def read_chat_token(token: str, *, max_age: int = TOKEN_MAX_AGE) -> ChatClaims:
    """The claims of a token; ``ChatLinkExpired`` after ``max_age`` seconds, ``ChatLinkInvalid`` for anything
    forged, altered or signed for another purpose (a secure-message token, a session)."""
    try:
        claims = signing.loads(token or "", salt=SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise ChatLinkExpired() from None
    except (signing.BadSignature, ValueError, TypeError):
        raise ChatLinkInvalid() from None
    if not isinstance(claims, dict) or not _is_id(claims.get("p")):
        raise ChatLinkInvalid()
    contact_id = claims.get("c")
    if contact_id is not None and not _is_id(contact_id):
        raise ChatLinkInvalid()
    return ChatClaims(patient_id=claims["p"], contact_id=contact_id)


def chat_path(token: str) -> str:
    return reverse("chat:page", kwargs={"token": token})


def chat_url(patient: Patient, *, contact: Contact | None = None) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + chat_path(make_chat_token(patient, contact=contact))


# --- The patient's chat --------------------------------------------------------------------------------------------


def chat_communications(patient_id: int, contact_id: int | None) -> QuerySet[Communication]:
    """The chat of a patient, or of one of their contacts: one communication per (patient, contact), created with
    the first message and kept for good (a Closed chat reopens on the next message)."""
    return Communication.objects.filter(
        channel=Channel.CHAT, patient_id=patient_id, contact_id=contact_id
    ).order_by("created_at", "id")


def chat_counterpart(patient: Patient, contact: Contact | None) -> str:
    """What the Inbox shows and searches as the other side of a chat: the patient's primary email (the contact's
    email), or ``chat:<patient id>`` (``chat:<patient id>:<contact id>``) when there is none."""
    if contact is not None:
        return contact.email or f"chat:{patient.pk}:{contact.pk}"
    email = (
        patient.contact_methods.filter(kind=ContactKind.EMAIL)
        .order_by("-is_primary", "value")
        .values_list("value", flat=True)
        .first()
    )
    return email or f"chat:{patient.pk}"


@dataclass(frozen=True)
class ChatSession:
    """An opened chat link: who is writing, and their chat communication once the first message made it."""

    token: str
    patient: Patient
    contact: Contact | None
    communication: Communication | None

    @property
    def contact_id(self) -> int | None:
        return self.contact.pk if self.contact is not None else None

    @property
    def writer_name(self) -> str:
        return self.contact.full_name if self.contact is not None else self.patient.full_name

    @property
    def first_name(self) -> str:
        if self.contact is not None:
            return self.contact.first_name
        return self.patient.preferred_name or self.patient.first_name

    @property
    def time_zone(self) -> str:
        return self.patient.time_zone

    def with_communication(self, communication: Communication) -> "ChatSession":
        return ChatSession(self.token, self.patient, self.contact, communication)


def open_chat(token: str) -> ChatSession:
    """The chat a link opens; ``ChatLinkInvalid`` when the patient or contact it names no longer exists."""
    claims = read_chat_token(token)
    patient = Patient.objects.filter(pk=claims.patient_id).first()
    if patient is None:
        raise ChatLinkInvalid()
    contact = None
    if claims.contact_id is not None:
        contact = Contact.objects.filter(pk=claims.contact_id, patient=patient).first()
        if contact is None:
            raise ChatLinkInvalid()
    communication = chat_communications(patient.pk, claims.contact_id).first()
    return ChatSession(token=token, patient=patient, contact=contact, communication=communication)


def chat_communication_of(session: ChatSession, communication_id: int) -> Communication | None:
    """The communication, only when it is this link's chat (a page may join no other communication's group)."""
    return chat_communications(session.patient.pk, session.contact_id).filter(pk=communication_id).first()


# --- What the patient sees: messages as entries rendered by the server ----------------------------------------------


@dataclass(frozen=True)
class ChatEntry:
    """One bubble on the chat page: a filed message, or the patient's message still being filed ("Sending…")."""

    client_id: str
    is_mine: bool
    author: str
    text: str
    at: dt.datetime
    message_id: int | None = None
    is_pending: bool = False
    is_auto_reply: bool = False
    attachments: tuple[Attachment, ...] = field(default=())


def client_id_of(provider_id: str) -> str:
    """The page's id of a patient message: the provider id is ``<patient id>:<client uuid>``."""
    return provider_id.rpartition(":")[2]


def patient_messages(communication: Communication | None) -> QuerySet[Message]:
    """The chat as the patient sees it: both directions, never internal notes, oldest first, in a constant number
    of queries."""
    if communication is None:
        return Message.objects.none()
    return (
        communication.messages.filter(is_internal_note=False)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


def _entry(message: Message, session: ChatSession) -> ChatEntry:
    mine = message.direction == Message.Direction.INBOUND
    if mine:
        author = "You"
    elif message.is_auto_reply or message.author is None:
        author = capfirst(settings.CARE_TEAM_NAME)
    else:
        author = message.author.first_name or message.author.full_name
    attachments = () if mine else tuple(message.attachments.all())
    return ChatEntry(
        client_id=client_id_of(message.provider_id)
        if mine and message.provider == Message.Provider.CHAT
        else "",
        is_mine=mine,
        author=author,
        text=message.body_text,
        at=message.created_at,
        message_id=message.pk,
        is_auto_reply=message.is_auto_reply,
        attachments=attachments,
    )


def pending_entry(raw: RawInbound) -> ChatEntry:
    payload = raw.payload if isinstance(raw.payload, dict) else {}
    return ChatEntry(
        client_id=str(payload.get("client_id") or client_id_of(raw.provider_id)),
        is_mine=True,
        author="You",
        text=str(payload.get("text") or ""),
        at=raw.received_at,
        is_pending=True,
    )


def thread_entries(session: ChatSession) -> list[ChatEntry]:
    return [_entry(m, session) for m in patient_messages(session.communication)]


def entries_after(session: ChatSession, after_id: int) -> list[ChatEntry]:
    """Messages newer than the last one the page has (by id: the order they were stored in)."""
    if session.communication is None:
        return []
    messages = patient_messages(session.communication).filter(pk__gt=after_id).order_by("pk")
    return [_entry(m, session) for m in messages]


def pending_entries(session: ChatSession) -> list[ChatEntry]:
    """The patient's messages stored but not filed yet (the worker has not got to them): shown as "Sending…"."""
    rows = RawInbound.objects.filter(
        source=RawInbound.Source.CHAT,
        processed_at__isnull=True,
        payload__patient_id=session.patient.pk,
        payload__contact_id=session.contact_id,
    ).order_by("received_at", "id")
    return [pending_entry(row) for row in rows]


def render_entries(session: ChatSession, entries: list[ChatEntry]) -> str:
    """The same fragment the page is built from, for the WebSocket to append."""
    return render_to_string(
        TEMPLATES + "_entries.html",
        {"entries": entries, "token": session.token, "patient_tz": session.time_zone},
    )


def render_typing(*names: str) -> str:
    """Staff typing by first name, as their messages are signed: "Nora is typing…", "Nora and Otto are typing…"."""
    first_names = [name.split()[0] for name in names if name and name.strip()]
    return render_to_string(TEMPLATES + "_typing.html", {"names": first_names})


# --- What the patient does ------------------------------------------------------------------------------------------


def clean_client_id(value) -> str:
    """The page's id for one message (a UUID): the same id twice is the same message, so a resend dedupes."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise ChatMessageRefused(
            "This message could not be sent. Please reload the page and try again."
        ) from None


def clean_text(value) -> str:
    from inbox.ingest.common import safe_text

    text = safe_text(value if isinstance(value, str) else "").replace("\r\n", "\n").strip()
    if not text:
        raise ChatMessageRefused("Write a message before sending.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ChatMessageRefused(f"A message can be at most {MAX_MESSAGE_CHARS:,} characters long.")
    return text


def submit_chat_message(
    *,
    session: ChatSession,
    client_id,
    text,
    remote_addr: str = "",
    user_agent: str = "",
    reply_channel: str = "",
) -> tuple[RawInbound, bool]:
    """Store the patient's message raw first, in its own transaction; the pipeline files it after commit
    (``inbox.ingest.chat.ingest_chat``). Returns ``(raw item, created)``.

    The provider id is ``<patient id>:<client uuid>``: the page's own id makes a resend (after a dropped connection)
    one message, and the patient prefix keeps one patient's id from ever matching another's. ``reply_channel`` is
    the page's WebSocket, told when the first message has made the chat communication so it can join its group.
    """
    from inbox.ingest.raw import store_raw

    client_id = clean_client_id(client_id)
    text = clean_text(text)
    return store_raw(
        source=RawInbound.Source.CHAT,
        provider_id=f"{session.patient.pk}:{client_id}",
        payload={
            "patient_id": session.patient.pk,
            "contact_id": session.contact_id,
            "client_id": client_id,
            "text": text,
        },
        envelope={
            "remote_addr": remote_addr or "",
            "user_agent": (user_agent or "")[:400],
            "reply_channel": reply_channel or "",
        },
    )


def record_view(*, session: ChatSession, request=None) -> None:
    """Opening the chat page is a view of the communication, audited as the patient's."""
    if session.communication is None:
        return
    audit.record(
        actor=None, action=audit.Action.COMMUNICATION_VIEWED, request=request, communication=session.communication,
        actor_label=PATIENT_LABEL, detail={"via": VIA},
    )  # fmt: skip


def chat_attachment(session: ChatSession, attachment_id: int) -> Attachment:
    """A file the care team sent in this chat; ``Attachment.DoesNotExist`` for anything else."""
    if session.communication is None:
        raise Attachment.DoesNotExist()
    return Attachment.objects.select_related("document").get(
        pk=attachment_id,
        message__communication=session.communication,
        message__direction=Message.Direction.OUTBOUND,
        message__is_internal_note=False,
    )


def record_download(*, session: ChatSession, attachment: Attachment, request=None) -> None:
    audit.record(
        actor=None, action=audit.Action.ATTACHMENT_DOWNLOADED, request=request, communication=session.communication,
        obj=attachment, actor_label=PATIENT_LABEL, detail={"via": VIA},
    )  # fmt: skip


# --- Staff: the link, and sending it -------------------------------------------------------------------------------


def chat_link_for(user, communication_or_patient: Communication | Patient) -> str:
    """The chat link for a patient (or, given a communication with one of their contacts, for that contact).

    Only for a user who may see the patient (the one access rule); ``NotPermitted`` otherwise.
    """
    if isinstance(communication_or_patient, Communication):
        patient, contact = communication_or_patient.patient, communication_or_patient.contact
    else:
        patient, contact = communication_or_patient, None
    if patient is None:
        raise ReplyNotAllowed("Link this communication to a patient before inviting them to chat.")
    if not can_view_patient(user, patient):
        raise NotPermitted("You do not have access to that patient.")
    return chat_url(patient, contact=contact)


def invite_text(*, first_name: str, url: str) -> str:
    team = settings.CARE_TEAM_NAME
    return (
        f"Hello {first_name}, {team} invites you to a live chat: {url}\n"
        f"The link works for {TOKEN_MAX_AGE_DAYS} days. In an emergency, call 911."
    )


INVITE_SUBJECT = "Chat with your care team"


def _invite_line(patient: Patient, communication: Communication | None, user) -> SendingLine | None:
    """The line an SMS invitation goes out on, among the lines ``user`` may send from: the conversation's own line,
    else the line of the patient's latest SMS conversation, else the first active organisational line (one nobody
    owns), else any active line."""
    lines = active_sending_lines(user)
    if communication is not None and lines.filter(pk=communication.sending_line_id).exists():
        return communication.sending_line
    recent = (
        Communication.objects.filter(patient=patient, channel=Channel.SMS, sending_line__in=lines)
        .select_related("sending_line")
        .order_by("-last_message_at", "-id")
        .first()
    )
    if recent is not None:
        return recent.sending_line
    return lines.filter(owner__isnull=True).first() or lines.first()


def send_chat_invite(
    *, user, patient: Patient, channel: str, communication: Communication | None = None, request=None
) -> Message:
    """Send the patient the chat link by SMS or email, as an ordinary outbound message staff can see in the Inbox.

    From a conversation of the same channel with this patient, the link is a reply in that conversation (kept Open),
    and goes to whoever it is with (patient or contact). Otherwise a new SMS (on the line picked by ``_invite_line``)
    or email to the patient's address on file starts. Refused for a user who may not see the patient.
    """
    if not can_view_patient(user, patient):
        raise NotPermitted("You do not have access to that patient.")
    if channel not in (Channel.SMS, Channel.EMAIL):
        raise ReplyNotAllowed("A chat invitation is sent by SMS or email.")
    if communication is not None and communication.patient_id != patient.pk:
        raise NotPermitted("That communication is not with this patient.")
    same_channel = communication is not None and (
        communication.channel == channel or (channel == Channel.EMAIL and communication.is_email)
    )
    contact = communication.contact if same_channel else None
    url = chat_url(patient, contact=contact)
    first_name = contact.first_name if contact else (patient.preferred_name or patient.first_name)
    body = invite_text(first_name=first_name, url=url)
    if same_channel:
        return send_reply(
            user=user,
            communication=communication,
            content=ReplyContent(body=body),
            close=False,
            request=request,
        )
    if channel == Channel.SMS:
        line = _invite_line(patient, communication, user)
        if line is None:
            raise ReplyNotAllowed("There is no active sending line to text the chat link from.")
        content = ReplyContent(body=body, sending_line=line)
        has_phone = patient.contact_methods.filter(kind=ContactKind.PHONE).exists()
        if not has_phone:
            raise ReplyNotAllowed(f"{patient.full_name} has no phone number on file.")
    else:
        content = ReplyContent(body=body, subject=INVITE_SUBJECT)
        if not patient.contact_methods.filter(kind=ContactKind.EMAIL).exists():
            raise ReplyNotAllowed(f"{patient.full_name} has no email address on file.")
    started = start_communication(
        user=user,
        patient=patient,
        channel=channel,
        content=content,
        to=_primary(patient, channel),
        request=request,
    )
    return started.messages.order_by("-created_at", "-id").first()


def _primary(patient: Patient, channel: str) -> str:
    kind = ContactKind.PHONE if channel == Channel.SMS else ContactKind.EMAIL
    return (
        patient.contact_methods.filter(kind=kind, is_opted_out=False)
        .order_by("-is_primary", "value")
        .values_list("value", flat=True)
        .first()
        or ""
    )
