"""The demo patient simulator (DEBUG or DEMO_MODE only, DESIGN.md: Runtime): writes as a patient, one of their
contacts or an unknown sender through the real ingestion path — a signed Twilio webhook, an email over SMTP or the
signed email webhook — sent over the network to the running server, exactly as a provider would.

Who may be written as follows the one access rule: the patients the signed-in user may see (and their contacts).
What was sent is kept in the user's session (the newest ``LOG_SIZE`` items) for the page to show.
"""

import asyncio
import secrets
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from inbox.models import Channel, Message
from inbox.views import email_signature

from .access import patients_visible_to
from .chat import chat_path, make_chat_token
from .models import Contact, ContactKind, Patient, PatientContactMethod

LOG_SESSION_KEY = "patient_simulator_log"
LOG_SIZE = 20
PATIENT_CHOICES = 100  # patients offered in the picker (alphabetical); any visible patient is accepted
THREAD_CHOICES = 30  # recent outbound emails offered to reply to
TIMEOUT_SECONDS = 10
UNKNOWN = "unknown"
SIMULATOR_ACCOUNT_SID = "AC" + "0" * 32  # when TWILIO_ACCOUNT_SID is unset: the shape of a Twilio account id


# --- Who writes -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Writer:
    """The sender: a patient, a contact of a patient, or nobody on file (``patient is None``)."""

    patient: Patient | None = None
    contact: Contact | None = None

    @property
    def is_unknown(self) -> bool:
        return self.patient is None

    @property
    def name(self) -> str:
        if self.contact is not None:
            return self.contact.full_name
        return self.patient.full_name if self.patient is not None else "Unknown sender"

    @property
    def describe(self) -> str:
        if self.contact is not None:
            return f"{self.contact.full_name} ({self.contact.relationship} of {self.patient.full_name})"
        return self.name

    def _method(self, kind: str) -> str:
        if self.patient is None:
            return ""
        if self.contact is not None:
            return self.contact.phone if kind == ContactKind.PHONE else self.contact.email
        return (
            self.patient.contact_methods.filter(kind=kind)
            .order_by("-is_primary", "value")
            .values_list("value", flat=True)
            .first()
            or ""
        )

    @property
    def phone(self) -> str:
        return self._method(ContactKind.PHONE)

    @property
    def email(self) -> str:
        return self._method(ContactKind.EMAIL)


def writer_value(writer: Writer) -> str:
    if writer.contact is not None:
        return f"c:{writer.contact.pk}"
    return f"p:{writer.patient.pk}" if writer.patient is not None else UNKNOWN


def writer_choices(user, *, unknown: bool = True) -> list:
    """Choices for a writer ``<select>``: one group per patient (the patient, then their contacts), among the first
    ``PATIENT_CHOICES`` patients ``user`` may see, then "Unknown sender" when ``unknown``."""
    patients = list(
        patients_visible_to(user)
        .order_by("last_name", "first_name", "pk")
        .prefetch_related("contacts")[:PATIENT_CHOICES]
    )
    choices: list = []
    for patient in patients:
        options = [(f"p:{patient.pk}", f"{patient.full_name} — patient")]
        options += [
            (f"c:{contact.pk}", f"{contact.full_name} — {contact.relationship}")
            for contact in sorted(patient.contacts.all(), key=lambda c: (c.last_name, c.first_name, c.pk))
        ]
        choices.append((patient.full_name, options))
    if unknown:
        choices.append(("Not on file", [(UNKNOWN, "Unknown sender")]))
    return choices


def resolve_writer(user, value: str) -> Writer | None:
    """The writer a choice names, or None when it names nobody ``user`` may write as (unknown, or not visible)."""
    if value == UNKNOWN:
        return Writer()
    kind, _, pk = (value or "").partition(":")
    if not pk.isdigit():
        return None
    visible = patients_visible_to(user)
    if kind == "p":
        patient = visible.filter(pk=int(pk)).first()
        return Writer(patient=patient) if patient is not None else None
    if kind == "c":
        contact = Contact.objects.select_related("patient").filter(pk=int(pk), patient__in=visible).first()
        return Writer(patient=contact.patient, contact=contact) if contact is not None else None
    return None


def unknown_phone() -> str:
    """A made-up synthetic +1555… number nobody has on file (so the SMS is Unrecognized)."""
    while True:
        number = "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))
        on_file = (
            PatientContactMethod.objects.filter(kind=ContactKind.PHONE, value=number).exists()
            or Contact.objects.filter(phone=number).exists()
        )
        if not on_file:
            return number


def unknown_email() -> str:
    return f"newcomer-{secrets.token_hex(3)}@unknown.example"


def reply_threads(user, writer: Writer | None = None):
    """Outbound emails (with a Message-ID) a patient could reply to: the newest ``THREAD_CHOICES`` among the
    patients ``user`` may see, only the writer's patient's (and with that contact, or the patient) when given."""
    messages = Message.objects.filter(
        direction=Message.Direction.OUTBOUND,
        is_internal_note=False,
        communication__channel__in=(Channel.EMAIL, Channel.SECURE_EMAIL),
        communication__patient__in=patients_visible_to(user),
    ).exclude(email_message_id="")
    if writer is not None and writer.patient is not None:
        messages = messages.filter(communication__patient=writer.patient)
        messages = messages.filter(
            Q(communication__contact=writer.contact)
            if writer.contact is not None
            else Q(communication__contact__isnull=True)
        )
    return messages.select_related("communication__patient", "communication__contact").order_by(
        "-created_at", "-id"
    )


def thread_choices(user, writer_value: str) -> list:
    """The email form's Thread choices for the writer a choice names: a new conversation, or a reply in one of that
    writer's threads (none for an unknown sender)."""
    writer = resolve_writer(user, writer_value)
    choices = [("", "New conversation")]
    if writer is not None and not writer.is_unknown:
        threads = reply_threads(user, writer)[:THREAD_CHOICES]
        choices += [(message.pk, f"Reply to {thread_label(message)}") for message in threads]
    return choices


def thread_label(message: Message) -> str:
    subject = message.subject or message.communication.subject or "(no subject)"
    who = message.communication.contact or message.communication.patient
    when = timezone.localtime(message.created_at).strftime("%b %-d")
    return f"{who.full_name if who else message.recipient_address}: {subject} ({when})"


# --- What is sent ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """This server: ``public`` is its origin as the browser reached it (what a provider would call, and what the
    Twilio signature covers); ``socket`` is where the request actually came in (the address and port this process
    listens on), so the simulator only ever connects back to itself, whatever Host header the browser sent."""

    public: str
    socket: str

    def endpoint(self, path: str) -> tuple[str, str]:
        """(URL to connect to, URL as the server will see it)."""
        return self.socket.rstrip("/") + path, self.public.rstrip("/") + path

    @property
    def headers(self) -> dict:
        parts = urllib.parse.urlsplit(self.public)
        headers = {"Host": parts.netloc}
        if parts.scheme == "https":  # reached through a TLS proxy: say so, as the proxy does
            headers["X-Forwarded-Proto"] = "https"
        return headers


def server_of(request) -> Server:
    name = request.META.get("SERVER_NAME", "127.0.0.1")
    host = f"[{name}]" if ":" in name else name
    return Server(
        public=f"{request.scheme}://{request.get_host()}",
        socket=f"http://{host}:{request.META.get('SERVER_PORT', '80')}",
    )


@dataclass(frozen=True)
class Outgoing:
    """One item for the server's ingestion: an HTTP POST (``url``) or an SMTP transaction (``smtp_host``)."""

    channel: str
    summary: str
    route: str
    data: bytes
    url: str = ""
    headers: dict = field(default_factory=dict)
    smtp_host: str = ""
    smtp_port: int = 0
    mail_from: str = ""
    rcpt_to: str = ""


def twilio_sms(*, server: Server, sender: str, line, body: str, writer: Writer) -> Outgoing:
    """An inbound SMS as Twilio posts it, signed with ``TWILIO_AUTH_TOKEN`` the way the webhook verifies it (the
    URL as called and the form parameters: twilio's ``RequestValidator``)."""
    connect, url = server.endpoint(reverse("hooks:twilio_sms"))
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": settings.TWILIO_ACCOUNT_SID or SIMULATOR_ACCOUNT_SID,
        "From": sender,
        "To": line.number,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN or "").compute_signature(url, params)
    return Outgoing(
        channel="SMS",
        summary=f"{writer.name} ({sender}) → {line.display_name}",
        route=f"POST {reverse('hooks:twilio_sms')}",
        url=connect,
        data=urllib.parse.urlencode(params).encode(),
        headers={
            **server.headers,
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def build_email(
    *, writer: Writer, sender: str, to: str, subject: str, body: str, reply_to: Message | None
) -> bytes:
    message = EmailMessage()
    message["From"] = formataddr((writer.name, sender)) if not writer.is_unknown else sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = timezone.now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "simulator.example")
    if reply_to is not None:
        message["In-Reply-To"] = reply_to.email_message_id
        message["References"] = " ".join([*reply_to.references.split(), reply_to.email_message_id][-20:])
    message.set_content(body)
    return message.as_bytes()


def email_item(*, server: Server, route: str, raw: bytes, writer: Writer, sender: str, to: str, subject: str):
    summary = f"{writer.name} ({sender}) → {to}: {subject}"
    if route == "smtp":
        return Outgoing(
            channel="Email",
            summary=summary,
            route=f"SMTP {settings.SMTP_HOST}:{settings.SMTP_PORT}",
            data=raw,
            smtp_host=settings.SMTP_HOST,
            smtp_port=settings.SMTP_PORT,
            mail_from=sender,
            rcpt_to=to,
        )
    path = reverse("hooks:email_inbound")
    return Outgoing(
        channel="Email",
        summary=summary,
        route=f"POST {path}",
        url=server.endpoint(path)[0],
        data=raw,
        headers={
            **server.headers,
            "Content-Type": "message/rfc822",
            "X-Inbox-Signature": email_signature(settings.INBOUND_EMAIL_SECRET or "", raw),
        },
    )


def chat_link(*, server: Server, writer: Writer) -> str:
    """The real signed chat link of the patient (or contact): the page the patient opens, over its WebSocket."""
    return server.public.rstrip("/") + chat_path(make_chat_token(writer.patient, contact=writer.contact))


# --- Sending it -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    is_ok: bool
    result: str


def _post(item: Outgoing) -> Outcome:
    request = urllib.request.Request(item.url, data=item.data, headers=item.headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 — our own server
            return Outcome(True, f"{response.status} {response.reason}")
    except urllib.error.HTTPError as error:
        text = error.read(300).decode("utf-8", "replace").strip()
        return Outcome(False, f"{error.code} {text or error.reason}")
    except (urllib.error.URLError, OSError) as error:
        return Outcome(False, f"Could not reach {item.url}: {getattr(error, 'reason', error)}")


def _smtp(item: Outgoing) -> Outcome:
    try:
        with smtplib.SMTP(item.smtp_host, item.smtp_port, timeout=TIMEOUT_SECONDS) as client:
            client.ehlo("patient-simulator.example")
            for code, reply in (client.mail(item.mail_from), client.rcpt(item.rcpt_to)):
                if code not in (250, 251):
                    client.rset()
                    return Outcome(False, f"{code} {reply.decode('utf-8', 'replace')}")
            code, reply = client.data(item.data)
            return Outcome(code == 250, f"{code} {reply.decode('utf-8', 'replace')}")
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(
            False, f"No SMTP receiver at {item.smtp_host}:{item.smtp_port} ({error}); try the email webhook"
        )


async def deliver(item: Outgoing) -> Outcome:
    """Send ``item`` to the server, off the event loop (a blocking client in a thread of its own): the server that
    receives it is this very process under ``make run``, so nothing here may wait on the thread that runs views."""
    return await asyncio.to_thread(_smtp if item.smtp_host else _post, item)


# --- The page's log -------------------------------------------------------------------------------------------------


def remember(session, *, channel: str, summary: str, route: str, outcome: Outcome, link: str = "") -> None:
    entry = {
        "at": timezone.now().isoformat(),
        "channel": channel,
        "summary": summary,
        "route": route,
        "link": link,
        **asdict(outcome),
    }
    session[LOG_SESSION_KEY] = [entry, *session.get(LOG_SESSION_KEY, [])][:LOG_SIZE]


def sent_log(session) -> list[dict]:
    from django.utils.dateparse import parse_datetime

    return [{**entry, "at": parse_datetime(entry["at"])} for entry in session.get(LOG_SESSION_KEY, [])]
