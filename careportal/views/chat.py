"""The patient's live chat page (DESIGN.md: Live chat) and the staff action that sends its link.

The page has no login: the signed link is the credential (``careportal.chat``); a forged link is a friendly 404, an
expired one a 410. The page talks to ``careportal.consumers_chat`` over a WebSocket; a plain form post to ``send``
is the fallback when the socket is unavailable, so a message never gets stuck in the browser. Views are thin: open
the link, call one service in ``careportal.chat``, render.
"""

import uuid
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from inbox import audit
from inbox.errors import InboxError
from inbox.models import Attachment, Channel, Communication
from inbox.selectors import communication_for
from inbox.services import ALLOWED_UPLOAD_TYPES

from .. import chat, chat_hours
from ..access import can_view_patient
from ..models import Patient

T = "careportal/chat/"
SAFE_DOWNLOAD_TYPES = ALLOWED_UPLOAD_TYPES - {"text/html"}
NOT_STORED = "Your message could not be sent just now. Please try again in a moment."


# --- The patient's page ---------------------------------------------------------------------------------------


def _notice(request, *, expired: bool):
    if expired:
        title = "This chat link has expired"
        text = (
            f"Chat links work for {chat.TOKEN_MAX_AGE_DAYS} days. Please ask your care team to send you a new one, "
            "or contact them the usual way."
        )
    else:
        title = "This chat link is not valid"
        text = "Please check that you copied the whole link, or ask your care team to send you a new one."
    context = {"title": title, "text": text, "team": capfirst(settings.CARE_TEAM_NAME)}
    return render(request, T + "notice.html", context, status=410 if expired else 404)


def chat_view(view):
    """Open the link first: a forged or altered one is a 404, an expired one a 410, both showing nothing else. The
    page is never cached."""

    @wraps(view)
    def wrapper(request, token: str, *args, **kwargs):
        try:
            session = chat.open_chat(token)
        except chat.ChatLinkExpired:
            return _notice(request, expired=True)
        except chat.ChatLinkInvalid:
            return _notice(request, expired=False)
        return view(request, session, *args, **kwargs)

    return never_cache(wrapper)


def _page(request, session: chat.ChatSession, *, status: int = 200, error: str = "", draft: str = ""):
    entries = chat.thread_entries(session)
    hours = chat_hours.business_hours()
    context = {
        "session": session,
        "token": session.token,
        "entries": entries,
        "pending": chat.pending_entries(session),
        "last_id": max((e.message_id for e in entries), default=0),
        "hours": hours,
        "is_open": hours.is_open(timezone.now()),
        "team": capfirst(settings.CARE_TEAM_NAME),
        "team_name": settings.CARE_TEAM_NAME,
        "ws_path": f"/ws/chat/{session.token}/",
        "client_id": uuid.uuid4(),
        "max_chars": chat.MAX_MESSAGE_CHARS,
        "patient_tz": session.time_zone,
        "error": error,
        "draft": draft,
    }
    return render(request, T + "page.html", context, status=status)


@require_GET
@chat_view
def page(request, session):
    chat.record_view(session=session, request=request)
    return _page(request, session)


@require_POST
@chat_view
def send(request, session):
    """The page's message without a WebSocket: stored raw first, then back to the page (post/redirect/get)."""
    text = request.POST.get("text", "")
    try:
        chat.submit_chat_message(
            session=session,
            client_id=request.POST.get("client_id", ""),
            text=text,
            remote_addr=audit.client_ip(request) or "",
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    except chat.ChatMessageRefused as error:
        return _page(request, session, status=400, error=str(error), draft=text[: chat.MAX_MESSAGE_CHARS])
    except DatabaseError:
        return _page(request, session, status=503, error=NOT_STORED, draft=text[: chat.MAX_MESSAGE_CHARS])
    return redirect("chat:page", token=session.token)


@require_GET
@chat_view
def attachment(request, session, attachment_pk: int):
    """A file the care team sent in this chat, downloaded (never shown inline) and audited."""
    try:
        item = chat.chat_attachment(session, attachment_pk)
    except Attachment.DoesNotExist:
        raise Http404("No such file in this chat.") from None
    source = item.document.file if item.document_id else item.file
    try:
        handle = source.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing.") from None
    chat.record_download(session=session, attachment=item, request=request)
    content_type = (
        item.content_type if item.content_type in SAFE_DOWNLOAD_TYPES else "application/octet-stream"
    )
    response = FileResponse(handle, as_attachment=True, filename=item.filename, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- Staff: send the link from the reply box ------------------------------------------------------------------


def _back(request, patient: Patient) -> str:
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("careportal:patient_detail", kwargs={"pk": patient.pk})


@login_required
@require_POST
def chat_invite(request, pk: int):
    """Send patient ``pk`` their chat link by SMS or email (``channel``), from the conversation ``communication``
    when given. A patient the user may not see is a 404, exactly like one that does not exist."""
    patient = Patient.objects.filter(pk=pk).first()
    if patient is None or not can_view_patient(request.user, patient):
        raise Http404("No such patient.")
    communication = None
    communication_id = request.POST.get("communication", "")
    if communication_id:
        try:
            communication = communication_for(user=request.user, pk=int(communication_id))
        except (ValueError, Communication.DoesNotExist):
            raise Http404("No such communication.") from None
    channel = request.POST.get("channel", "")
    sent = error = None
    try:
        sent = chat.send_chat_invite(
            user=request.user, patient=patient, channel=channel, communication=communication, request=request
        )
    except InboxError as exc:
        error = str(exc)
    channel_label = "SMS" if channel == Channel.SMS else "email"
    if getattr(request, "htmx", False):
        context = {"patient": patient, "communication": communication, "invite_sent": sent,
                   "invite_error": error, "invite_channel": channel_label}  # fmt: skip
        return render(request, T + "_invite_button.html", context)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Chat link sent to {sent.recipient_address} by {channel_label}.")
    return redirect(_back(request, patient))
