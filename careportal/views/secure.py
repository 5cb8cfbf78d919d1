"""The patient-facing secure message page (DESIGN.md: Secure email): a signed link, a one-time code emailed to the
address on file, then the thread and a reply form.

Patients have no account, so these pages are not login-protected: every step needs a valid link, and reading,
replying and downloading also need a session verified with a code for that link's communication (30 minutes).
Views are thin: resolve the link, call one service in ``inbox.secure``, render.
"""

import datetime as dt
import time
from dataclasses import dataclass
from functools import wraps

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.db import DatabaseError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inbox import secure
from inbox.models import Attachment, Message
from inbox.sanitize import clean_html, text_to_html
from inbox.services import ALLOWED_UPLOAD_TYPES

T = "careportal/secure/"
SESSION_KEY = "secure_access"  # {communication id: verified-until timestamp}
DRAFT_KEY = "secure_drafts"  # {communication id: reply text kept when the session ended before it was sent}
SAFE_DOWNLOAD_TYPES = ALLOWED_UPLOAD_TYPES - {"text/html"}
# A mistyped code or an empty reply re-renders its form with the error (200, like the sign-in page); limits and
# outages answer with their own status.
CODE_FORM_CREDENTIALS = {
    "username": "secure-email-code"
}  # one django-axes key (with the address) for every link
CODE_FORM_LOCKED = (
    "Too many incorrect codes were entered from this network, so codes cannot be checked here for now. "
    f"Try again in {settings.AXES_COOLOFF_TIME.seconds // 60} minutes, or call your care team."
)
STATUS_FOR_REFUSAL = {
    secure.CodeLocked: 429,
    secure.CodeRateLimited: 429,
    secure.CodeNotSent: 503,
}


def _notice(request, *, title: str, text: str, status: int):
    return render(request, T + "notice.html", {"title": title, "text": text}, status=status)


def secure_view(view):
    """Resolve the link first: a forged, altered or expired one is a friendly 404/410 that shows nothing else;
    a link whose address is no longer on file is refused. The page is never cached."""

    @wraps(view)
    def wrapper(request, token: str, *args, **kwargs):
        try:
            link = secure.open_link(token)
            secure.require_address_on_file(link)
            return view(request, link, *args, **kwargs)
        except secure.LinkNotValid as exc:
            status = 410 if isinstance(exc, secure.LinkExpired) else 404
            return _notice(
                request,
                title="This link is not valid or has expired",
                text="Secure message links work for a limited time. If you still need to read your message, "
                "please contact your care team and ask them to send it again.",
                status=status,
            )
        except secure.AddressNotOnFile as exc:
            return _notice(request, title="This message can’t be opened online", text=str(exc), status=403)

    return never_cache(wrapper)


def _verified_until(request, link) -> float | None:
    until = (request.session.get(SESSION_KEY) or {}).get(str(link.communication.pk))
    return until if isinstance(until, int | float) and until > time.time() else None


def _grant(request, link, until) -> None:
    """Scope the verified session to this communication only; a new session key so a planted one is useless."""
    now = time.time()
    access = {
        key: value
        for key, value in (request.session.get(SESSION_KEY) or {}).items()
        if isinstance(value, int | float) and value > now
    }
    access[str(link.communication.pk)] = until.timestamp()
    request.session.cycle_key()
    request.session[SESSION_KEY] = access


def _revoke(request, link) -> None:
    access = dict(request.session.get(SESSION_KEY) or {})
    if access.pop(str(link.communication.pk), None) is not None:
        request.session[SESSION_KEY] = access


def _keep_draft(request, link, text: str) -> None:
    drafts = dict(request.session.get(DRAFT_KEY) or {})
    drafts[str(link.communication.pk)] = text[: secure.MAX_REPLY_CHARS]
    request.session[DRAFT_KEY] = drafts


def _take_draft(request, link) -> str:
    drafts = dict(request.session.get(DRAFT_KEY) or {})
    text = drafts.pop(str(link.communication.pk), "")
    if text:
        request.session[DRAFT_KEY] = drafts
    return text if isinstance(text, str) else ""


def _ask_to_verify(request, link):
    messages.info(request, "For your privacy, please confirm it’s you to continue.")
    return redirect("secure:start", token=link.token)


def _page(request, template: str, link, status: int = 200, **context):
    context.update(link=link, team=settings.CARE_TEAM_NAME, code_minutes=_minutes(secure.CODE_LIFETIME))
    return render(request, T + template, context, status=status)


def _minutes(delta) -> int:
    return int(delta.total_seconds() // 60)


# --- Step 1: ask for a code -------------------------------------------------------------------------------


@require_GET
@secure_view
def start(request, link):
    """Says where the code will go (masked) and offers "Send me a code"; a verified session goes to the thread."""
    if _verified_until(request, link):
        return redirect("secure:thread", token=link.token)
    return _page(request, "start.html", link, has_code=secure.has_live_code(link))


@require_POST
@secure_view
def send_code(request, link):
    try:
        secure.issue_code(link=link, request=request)
    except secure.CodeRefused as exc:
        return _page(
            request, "start.html", link, status=STATUS_FOR_REFUSAL.get(type(exc), 200), error=str(exc),
            has_code=secure.has_live_code(link),
        )  # fmt: skip
    messages.success(request, f"Code sent to {link.masked_address}. It can take a minute to arrive.")
    return redirect("secure:verify", token=link.token)


# --- Step 2: enter the code -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@secure_view
def verify(request, link):
    if request.method == "GET":
        if _verified_until(request, link):
            return redirect("secure:thread", token=link.token)
        return _page(request, "verify.html", link)
    # django-axes counts wrong codes per address across every secure link (the code itself is locked per
    # communication by inbox.secure): one address trying codes on many links is stopped as a sign-in would be.
    if not AxesProxyHandler.is_allowed(request, CODE_FORM_CREDENTIALS):
        return _page(request, "verify.html", link, status=429, error=CODE_FORM_LOCKED, locked=True)
    try:
        until = secure.verify_code(link=link, code=request.POST.get("code", ""), request=request)
    except secure.CodeRefused as exc:
        locked = isinstance(exc, secure.CodeLocked)
        wrong_code = locked or getattr(exc, "attempts_left", None) is not None
        if wrong_code:
            AxesProxyHandler.user_login_failed(
                sender=verify, credentials=CODE_FORM_CREDENTIALS, request=request
            )
        if getattr(request, "axes_locked_out", False):
            request.axes_locked_out = False  # this page says so itself, instead of the staff sign-in page
            return _page(request, "verify.html", link, status=429, error=CODE_FORM_LOCKED, locked=True)
        return _page(
            request, "verify.html", link, status=STATUS_FOR_REFUSAL.get(type(exc), 200), error=str(exc),
            locked=locked,
        )  # fmt: skip
    _grant(request, link, until)
    return redirect("secure:thread", token=link.token)


# --- Step 3: read and reply -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadEntry:
    """One message as the patient sees it."""

    message: Message
    html: SafeString
    is_from_patient: bool
    author: str
    attachments: tuple[Attachment, ...]


def _author(message: Message) -> str:
    """Staff are shown by first name and title (e.g. "Nora, RN"); never their full name or username."""
    author = message.author
    if author is None:
        return "Your care team"
    name = author.first_name or "Your care team"
    return f"{name}, {author.title}" if author.title else name


def _entries(link) -> list[ThreadEntry]:
    entries = []
    for message in secure.patient_thread(link.communication):
        is_from_patient = message.direction == Message.Direction.INBOUND
        html = clean_html(message.body_html) if message.body_html else text_to_html(message.body_text)
        entries.append(
            ThreadEntry(
                message=message,
                html=mark_safe(html),  # noqa: S308 — sanitised by nh3 (or escaped text) just above
                is_from_patient=is_from_patient,
                author="You" if is_from_patient else _author(message),
                attachments=() if is_from_patient else tuple(message.attachments.all()),
            )
        )
    return entries


def _thread_page(request, link, *, status: int = 200, error: str = "", draft: str = "", nonce: str = ""):
    until = _verified_until(request, link)
    return _page(
        request,
        "thread.html",
        link,
        status=status,
        entries=_entries(link),
        pending=list(secure.pending_replies(link.communication)),
        patient_tz=link.communication.patient.time_zone,
        access_until=dt.datetime.fromtimestamp(until, tz=dt.UTC) if until else None,
        nonce=nonce or secure.new_reply_nonce(),
        draft=draft,
        error=error,
        max_reply=secure.MAX_REPLY_CHARS,
    )


@require_GET
@secure_view
def thread(request, link):
    """The conversation and the reply form; every view is audited as the patient's."""
    if not _verified_until(request, link):
        return _ask_to_verify(request, link)
    secure.record_view(link=link, request=request)
    return _thread_page(request, link, draft=_take_draft(request, link))


@require_POST
@secure_view
def reply(request, link):
    """Store the reply raw-first; the pipeline files it as a secure inbound message and reopens the
    communication. A session that ended meanwhile keeps the text for after the next code."""
    text = request.POST.get("text", "")
    if not _verified_until(request, link):
        if text.strip():
            _keep_draft(request, link, text)
        return _ask_to_verify(request, link)
    nonce = request.POST.get("nonce", "")
    try:
        secure.submit_reply(link=link, text=text, nonce=nonce, request=request)
    except secure.ReplyRefused as exc:
        return _thread_page(request, link, error=str(exc), draft=text)
    except DatabaseError:
        return _thread_page(
            request, link, status=503, draft=text, nonce=nonce,
            error="We could not send your reply just now. Please try again in a minute.",
        )  # fmt: skip
    messages.success(request, "Your reply was sent securely to your care team.")
    return redirect("secure:thread", token=link.token)


@require_GET
@secure_view
def attachment(request, link, attachment_pk: int):
    """A file of an outbound message of this communication, for a verified session only; audited; always a
    download, never rendered inline."""
    if not _verified_until(request, link):
        return _ask_to_verify(request, link)
    try:
        found = secure.patient_attachment(link.communication, attachment_pk)
    except Attachment.DoesNotExist:
        raise Http404("No such attachment.") from None
    stored = found.document.file if found.document_id else found.file
    try:
        handle = stored.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing.") from None
    secure.record_download(link=link, attachment=found, request=request)
    content_type = found.content_type if found.content_type in SAFE_DOWNLOAD_TYPES else None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=found.filename,
        content_type=content_type or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
@secure_view
def sign_out(request, link):
    """End the verified session for this communication (a shared computer)."""
    _revoke(request, link)
    messages.info(request, "You have left your secure messages. Use the link in your email to come back.")
    return redirect("secure:start", token=link.token)
