"""The Inbox page of the Care Portal (DESIGN.md: Inboxes and folders, Status, Recognition and linking, Reply box).

Every piece of the screen is a partial on its own URL — folder navigation with counts, the list, its rows, one row,
the conversation, its header, its messages — so HTMX requests get the partial, normal requests the whole page
(every URL works on reload and as a deep link), and the real-time push can reuse the same partials. Views are thin:
parse input (``careportal.forms``), call one selector or service, render.
"""

import dataclasses
import hashlib
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from designer.placeholders import fill
from designer.selectors import published_templates
from inbox import events
from inbox.errors import ConversationChanged, InboxError, UnlinkedRecipientNotConfirmed
from inbox.folders import Folder, InboxKind
from inbox.models import Attachment, Channel, Communication
from inbox.sanitize import clean_html
from inbox.selectors import (
    active_sending_lines,
    assignee_candidates,
    communication_for,
    conversation_messages,
    folder_counts,
    folder_page,
    folders_for,
    search_all_inboxes,
    with_candidate_counts,
    with_found_in,
)
from inbox.services import (
    ALLOWED_UPLOAD_TYPES,
    Seen,
    assign,
    documents_for_reply,
    link_to_patient,
    record_download,
    record_view,
    send_reply,
    set_status,
    start_communication,
)

from .. import presence
from ..access import patients_visible_to
from ..forms import (
    AssignForm,
    LinkForm,
    NewCommunicationForm,
    ReplyForm,
    StatusForm,
)
from ..models import ContactKind, Patient
from ..presence import presence_for
from ..selectors import search_visible_patients, visible_candidates
from .inbox_state import (
    ListState,
    changed,
    current_state,
    deep_link,
    form_error,
    inbox_view,
    int_or_none,
    is_partial,
    next_url,
    request_state,
    unprocessable,
)

T = "careportal/inbox/"
PAGE = T + "page.html"

# A small, static set of emoji for the reply box picker (inserted at the cursor).
# fmt: off
EMOJI = (
    "🙂", "😊", "😀", "😄", "😉", "😍", "🤗", "🙏", "👍", "👋", "👏", "🙌", "💪", "🤞", "👌", "✅", "✔️", "❤️", "💙", "💚",
    "⭐", "🌟", "🎉", "🌞", "🌈", "🌷", "☕", "📅", "⏰", "📞", "💊", "🩺", "🏥", "🩹", "🌡️", "📝", "📎", "📌", "⚠️", "❓",
)
# fmt: on

EMPTY_STATES = {
    Folder.ASSIGNED_TO_ME: ("Nothing is assigned to you", "Communications assigned to you appear here."),
    Folder.PRIMARY_CONTACT: (
        "No messages from your patients",
        "Communications from patients you are the primary contact for appear here.",
    ),
    Folder.MY_UNRECOGNIZED: (
        "No unrecognized senders",
        "Messages assigned to you from senders who match no single patient appear here.",
    ),
    Folder.SENT: ("You have not sent anything yet", "Communications you have replied to appear here."),
    Folder.CARE_TEAM_DIRECTED: (
        "Your care teams are all caught up",
        "Communications from patients on your care teams appear here.",
    ),
    Folder.CARE_TEAM_UNRECOGNIZED: (
        "No unrecognized senders",
        "Messages whose sender could be one of your care teams' patients appear here.",
    ),
    Folder.ALL_DIRECTED: (
        "No patient communications",
        "Every linked communication you may see appears here.",
    ),
    Folder.ALL_UNRECOGNIZED: (
        "No unrecognized senders",
        "Every communication not yet linked to a patient appears here.",
    ),
}

# --- Context builders ---------------------------------------------------------------------------------------
# Shared with the WebSocket push (careportal.live): a pushed partial is the same template with the same context as
# the HTTP partial for the same viewer.


def nav_context(user, state: ListState, *, with_counts: bool = True) -> dict:
    """Folder navigation. Without counts (the page and the list), the navigation fetches them from the counts partial
    as soon as it loads: a folder shows its rows without waiting for every folder to be counted."""
    if with_counts:
        counts = folder_counts(user=user, filters=state.filters)
    else:
        counts = dict.fromkeys(folders_for(user))
    groups: dict[InboxKind, list] = {}
    for folder, count in counts.items():
        target = state.moved_to(folder)
        groups.setdefault(folder.inbox, []).append(
            {
                "folder": folder,
                "count": count,
                "url": target.list_url,
                "is_current": folder == state.folder and not state.searches_everywhere,
            }
        )
    return {
        "nav_groups": [{"inbox": kind, "folders": folders} for kind, folders in groups.items()],
        "counts_pending": not with_counts,
        "counts_key": counts_key(counts) if with_counts else "",
    }


def counts_key(counts: dict) -> str:
    """A short fingerprint of the counts a folder navigation shows: the page sends it back over the WebSocket, which
    pushes counts only when they differ from it (``careportal.hub``)."""
    text = ";".join(f"{folder.value}={count}" for folder, count in sorted(counts.items()))
    return hashlib.blake2s(text.encode(), digest_size=8).hexdigest()


def rows_context(user, state: ListState, cursor: str = "") -> dict:
    # Before the read: a change committed after it reaches the page over the WebSocket (careportal.hub).
    listed_at = time.time()
    if state.searches_everywhere:  # "Search all inboxes": rows say which folders they are in
        page = search_all_inboxes(user=user, filters=state.filters, cursor=cursor)
    else:
        page = folder_page(user=user, folder=state.folder, filters=state.filters, cursor=cursor)
    with_candidate_counts(page.rows)
    presence.with_replying(page.rows, viewer_id=user.pk)  # "… is replying": one cache read for the page
    title, hint = EMPTY_STATES[state.folder]
    return {
        "state": state,
        "rows": page.rows,
        "next_cursor": page.next_cursor,
        "is_first_page": not cursor,
        "listed_at": listed_at,
        "empty_title": title,
        "empty_hint": hint,
        "now": timezone.now(),
    }


def _template_channel(communication: Communication) -> str:
    if communication.channel == Channel.SMS:
        return "sms"
    return "email" if communication.is_email else "chat"


def _draft(form: ReplyForm | None, communication: Communication) -> dict:
    """What the user had in the reply box, to put back when a send is refused (HTML sanitised again). A fresh box
    on a Secure Email conversation starts with Secure on."""
    if form is None or not form.is_bound:
        is_secure = communication.channel == Channel.SECURE_EMAIL
        return {"body": "", "body_html": "", "documents": set(), "is_secure": is_secure, "sending_line": ""}
    data = form.data
    return {
        "body": data.get("body", ""),
        "body_html": clean_html(data.get("body_html", "")),
        "documents": {int(d) for d in data.getlist("document") if d.isdigit()},
        "is_secure": data.get("is_secure") in ("on", "true", "1"),
        "sending_line": data.get("sending_line", ""),
    }


def row_context(communication: Communication, state: ListState, viewer) -> dict:
    with_candidate_counts([communication])
    presence.with_replying([communication], viewer_id=viewer.pk)
    return {"c": communication, "state": state, "now": timezone.now()}


def messages_context(communication: Communication) -> dict:
    """The messages, and the newest one's id (the reply box's collision guard compares against it)."""
    conversation = list(conversation_messages(communication))
    return {
        "c": communication,
        "conversation": conversation,
        "last_message_id": max((m.pk for m in conversation), default=None),
    }


def presence_context(communication: Communication, viewer) -> dict:
    return {"c": communication, "presence": presence_for(communication.pk, viewer_id=viewer.pk)}


def conversation_context(
    communication: Communication,
    *,
    user,
    state: ListState | None,
    form=None,
    error: str = "",
    sent: bool = False,
) -> dict:
    is_unrecognized = communication.is_unrecognized
    needs_line = communication.channel == Channel.SMS and not communication.sending_line_id
    return {
        **messages_context(communication),
        **presence_context(communication, user),
        "state": state,
        "candidate_count": communication.candidate_patients.count() if is_unrecognized else 0,
        "reply": {
            "draft": _draft(form, communication),
            "error": error,
            "sent": sent,
            "templates": []
            if is_unrecognized
            else published_templates(channel=_template_channel(communication)),
            "documents": documents_for_reply(communication.patient) if communication.patient_id else [],
            "sending_lines": active_sending_lines(user) if needs_line else [],
            "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
            "allowed_types": ",".join(sorted(ALLOWED_UPLOAD_TYPES)),
            "emoji": EMOJI,
        },
    }


def header_context(communication: Communication, **extra) -> dict:
    return {
        "c": communication,
        "candidate_count": communication.candidate_patients.count() if communication.is_unrecognized else 0,
        **extra,
    }


def _conversation(request, communication: Communication, **extra) -> dict:
    state = current_state(request) if is_partial(request) else None
    return conversation_context(communication, user=request.user, state=state, **extra)


# --- Pages and list partials ------------------------------------------------------------------------------


@login_required
@require_GET
@inbox_view
def inbox(request):
    """The Inbox opens the first folder the user has; ``?c=`` (a communication) is carried along."""
    first = folders_for(request.user)[0]
    opened = int_or_none(request.GET.get("c"))
    return redirect(ListState(folder=first, open_id=opened).url)


@login_required
@require_GET
@inbox_view
def inbox_folder(request, inbox: str, folder: str):
    """A folder: navigation with counts, the list, and — with ``?c=`` — the open conversation."""
    state = request_state(request, inbox, folder)
    user = request.user
    if is_partial(request):
        state = dataclasses.replace(state, open_id=current_state(request).open_id)
        context = {**nav_context(user, state, with_counts=False), **rows_context(user, state)}
        response = render(request, T + "_list_response.html", context)
        response["HX-Push-Url"] = state.url
        return response
    context = {
        "active_nav": "inbox",
        **nav_context(user, state, with_counts=False),
        **rows_context(user, state),
    }
    if state.open_id is not None:
        communication = communication_for(user=user, pk=state.open_id)
        record_view(user=user, communication=communication, request=request)
        context.update(conversation_context(communication, user=user, state=state))
        context["state"] = state
    return render(request, PAGE, context)


@login_required
@require_GET
@inbox_view
def inbox_rows(request, inbox: str, folder: str):
    """Rows of a folder: the first page after a filter change (with fresh counts), or the next page (``cursor``)."""
    state = request_state(request, inbox, folder)
    if not is_partial(request):
        return redirect(state.url)
    state = dataclasses.replace(state, open_id=current_state(request).open_id)
    cursor = request.GET.get("cursor", "")
    try:
        context = rows_context(request.user, state, cursor)
    except (ValueError, OverflowError, OSError):
        return HttpResponseBadRequest("That page of the list is not valid; reload the folder.")
    if cursor:
        return render(request, T + "_rows.html", context)
    context.update(nav_context(request.user, state, with_counts=False))
    response = render(request, T + "_rows_response.html", context)
    if not request.GET.get("refresh"):  # a refresh after another action keeps the URL that action pushed
        response["HX-Push-Url"] = state.url
    return response


@login_required
@require_GET
@inbox_view
def inbox_counts(request, inbox: str, folder: str):
    """Folder navigation with counts — the same selector and filters as the list."""
    state = request_state(request, inbox, folder)
    if not is_partial(request):
        return redirect(state.url)
    return render(request, T + "_folder_nav.html", {"state": state, **nav_context(request.user, state)})


# --- One communication -----------------------------------------------------------------------------------


@login_required
@require_GET
@inbox_view
def communication(request, pk: int):
    """Open a communication (audited). Without HTMX it redirects to a folder page that opens it."""
    current = communication_for(user=request.user, pk=pk)
    if not is_partial(request):
        return redirect(deep_link(request.user, current))
    record_view(user=request.user, communication=current, request=request)
    return render(request, T + "_conversation.html", _conversation(request, current))


@login_required
@require_GET
@inbox_view
def communication_row(request, pk: int):
    current = communication_for(user=request.user, pk=pk)
    if not is_partial(request):
        return redirect(deep_link(request.user, current))
    state = current_state(request)
    if state.searches_everywhere:  # a row of "Search all inboxes" keeps its folder tags
        with_found_in(user=request.user, rows=[current])
    return render(request, T + "_row.html", row_context(current, state, request.user))


@login_required
@require_GET
@inbox_view
def communication_header(request, pk: int):
    current = communication_for(user=request.user, pk=pk)
    if not is_partial(request):
        return redirect(deep_link(request.user, current))
    # The header, and the status switch beside the reply box (out of band): what a reconnecting page re-fetches.
    return render(request, T + "_status_response.html", header_context(current))


@login_required
@require_GET
@inbox_view
def communication_messages(request, pk: int):
    current = communication_for(user=request.user, pk=pk)
    if not is_partial(request):
        return redirect(deep_link(request.user, current))
    return render(request, T + "_messages.html", messages_context(current))


@login_required
@require_POST
@inbox_view
def communication_reply(request, pk: int):
    """Send from the reply box: "Send and Close" by default, "Send and keep Open" when that button is pressed.

    Collision guard: the form carries what the user saw (newest message, status, assignee — as they were when the
    draft was begun, ``static/js/realtime.js``); when someone else wrote or changed it since, the service sends
    nothing and the answer (409) shows what changed, with "Send anyway" (the same send with ``override``). The
    draft stays in the box."""
    current = communication_for(user=request.user, pk=pk)
    form = ReplyForm(request.POST, request.FILES, communication=current, user=request.user)
    if form.is_valid():
        try:
            send_reply(
                user=request.user,
                communication=current,
                content=form.reply_content(),
                close=form.cleaned_data["close"],
                seen=_seen(request),
                confirm_unlinked_recipient=form.cleaned_data["confirm_unlinked_recipient"],
                request=request,
            )
        except ConversationChanged as changed_since:
            return _collision(request, communication_for(user=request.user, pk=pk), changed_since.changes)
        except UnlinkedRecipientNotConfirmed as unconfirmed:
            if is_partial(request):
                return _confirm_unlinked(request, current, unconfirmed.recipient)
            message = str(unconfirmed)
        except InboxError as error:
            message = str(error)
        else:
            change = presence.end_typing(current.pk, user_id=request.user.pk)  # sent: "typing…" ends now
            if change:
                events.publish_presence_changed(current.pk, replying=change.replying)
            if not is_partial(request):
                return redirect(next_url(request, current))
            current = communication_for(user=request.user, pk=pk)
            response = render(request, T + "_conversation.html", _conversation(request, current, sent=True))
            return changed(response, current)
    else:
        message = form_error(form)
    if not is_partial(request):
        messages.error(request, message)
        return redirect(next_url(request, current))
    context = _conversation(request, current, form=form, error=message)
    return unprocessable(request, T + "_reply_box.html", context, target="#reply-box", swap="outerHTML")


@login_required
@require_POST
@inbox_view
def communication_status(request, pk: int):
    """The manual Open/Closed switch beside the reply box."""
    current = communication_for(user=request.user, pk=pk)
    form = StatusForm(request.POST)
    message = ""
    if form.is_valid():
        try:
            set_status(
                user=request.user, communication=current, status=form.cleaned_data["status"], request=request
            )
        except InboxError as error:
            message = str(error)
    else:
        message = "Choose Open or Closed."
    if not is_partial(request):
        if message:
            messages.error(request, message)
        return redirect(next_url(request, current))
    current = communication_for(user=request.user, pk=pk)
    context = header_context(current, header_error=message)
    if message:
        return unprocessable(
            request, T + "_status_response.html", context, target="#conversation-header", swap="outerHTML"
        )
    return changed(render(request, T + "_status_response.html", context), current)


@login_required
@require_http_methods(["GET", "POST"])
@inbox_view
def communication_assign(request, pk: int):
    """GET: the assignee list (only users with access to the patient). POST: assign, reassign or unassign."""
    current = communication_for(user=request.user, pk=pk)
    if request.method == "GET" and not is_partial(request):
        return redirect(deep_link(request.user, current))
    candidates = assignee_candidates(current)
    if request.method == "GET":
        return render(request, T + "_assign.html", {"c": current, "candidates": candidates})
    form = AssignForm(request.POST)
    message = ""
    if form.is_valid():
        try:
            assign(
                user=request.user,
                communication=current,
                assignee=form.cleaned_data["assignee"],
                request=request,
            )
        except InboxError as error:
            message = str(error)
    else:
        message = form_error(form)
    if not is_partial(request):
        if message:
            messages.error(request, message)
        return redirect(next_url(request, current))
    if message:
        context = {"c": current, "candidates": candidates, "error": message}
        return unprocessable(request, T + "_assign.html", context, target="#dialog-slot", swap="innerHTML")
    current = communication_for(user=request.user, pk=pk)
    return changed(render(request, T + "_assign_response.html", header_context(current)), current)


@login_required
@require_http_methods(["GET", "POST"])
@inbox_view
def communication_link(request, pk: int):
    """GET: every matching patient and contact, and a search for any other visible patient (``?q=``).
    POST: link to a patient or one of their contacts, optionally remembering the sender's address or number."""
    current = communication_for(user=request.user, pk=pk)
    if request.method == "GET" and not is_partial(request):
        return redirect(deep_link(request.user, current))
    if request.method == "GET":
        if "q" in request.GET:
            results = search_visible_patients(request.user, request.GET["q"])
            return render(
                request, T + "_link_results.html", {"c": current, "results": results, "q": request.GET["q"]}
            )
        return render(request, T + "_link.html", _link_context(request, current))
    form = LinkForm(request.POST, user=request.user)
    message = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            link_to_patient(
                user=request.user,
                communication=current,
                patient=data["patient"],
                contact=data["contact"],
                remember=data["remember"],
                request=request,
            )
        except InboxError as error:
            message = str(error)
    else:
        message = form_error(form)
    if not is_partial(request):
        if message:
            messages.error(request, message)
        return redirect(next_url(request, current))
    if message:
        context = _link_context(request, current, error=message)
        return unprocessable(request, T + "_link.html", context, target="#dialog-slot", swap="innerHTML")
    current = communication_for(user=request.user, pk=pk)
    response = render(request, T + "_link_response.html", _conversation(request, current))
    return changed(response, current)


def _seen(request) -> Seen | None:
    """What the reply form says the user saw (every reply box sends it; an older page or a script without the
    fields is not checked), unless the user chose "Send anyway" (``override``) after seeing the changes."""
    data = request.POST
    if "seen_message_id" not in data or data.get("override") == "1":
        return None
    return Seen(
        last_message_id=int_or_none(data.get("seen_message_id")),
        status=data.get("seen_status", ""),
        assignee_id=int_or_none(data.get("seen_assignee")),
    )


def _collision(request, communication: Communication, changes):
    """The 409 answer when others changed the communication since the user last saw it: what changed, with "Send
    anyway"; the draft stays in the box."""
    data = request.POST
    if not is_partial(request):
        messages.warning(
            request, "Someone else changed this conversation while you were writing. Nothing was sent."
        )
        return redirect(next_url(request, communication))
    context = {
        **header_context(communication),
        **messages_context(communication),
        "changes": changes,
        "close": "0" if data.get("close") == "0" else "1",
    }
    response = render(request, T + "_collision_response.html", context, status=409)
    response["HX-Retarget"] = "#reply-collision"
    response["HX-Reswap"] = "outerHTML"
    return changed(response, communication)  # its row and the counts catch up too


def _confirm_unlinked(request, communication: Communication, recipient: str):
    """A reply to a sender linked to no patient, not yet confirmed: ask, naming the recipient, in the reply form (the
    collision guard's slot); confirming sends the same form with ``confirm_unlinked_recipient``. A question, not a
    refusal: 200, nothing sent, the draft stays in the box."""
    context = {
        "c": communication,
        "recipient": recipient,
        "close": "0" if request.POST.get("close") == "0" else "1",
    }
    response = render(request, T + "_unlinked_confirm.html", context)
    response["HX-Retarget"] = "#reply-collision"
    response["HX-Reswap"] = "outerHTML"
    return response


def _link_context(request, communication: Communication, error: str = "") -> dict:
    return {
        "c": communication,
        "candidates": visible_candidates(request.user, communication),
        "is_phone": communication.channel == Channel.SMS,
        "error": error,
    }


@login_required
@require_GET
@inbox_view
def template_fill(request, pk: int, template_pk: int):
    """A published template for this communication's channel, placeholders filled from the patient and the user;
    inserted into the reply box, where it stays editable."""
    current = communication_for(user=request.user, pk=pk)
    template = published_templates(channel=_template_channel(current)).get(pk=template_pk)
    return JsonResponse(
        {
            "name": template.name,
            "subject": fill(template.subject, patient=current.patient, user=request.user),
            "body": fill(template.body, patient=current.patient, user=request.user),
        }
    )


SAFE_DOWNLOAD_TYPES = ALLOWED_UPLOAD_TYPES - {"text/html"}


@login_required
@require_GET
@inbox_view
def attachment_download(request, pk: int, attachment_pk: int):
    """An attachment of a communication the user may see; audited; always a download, never rendered inline."""
    current = communication_for(user=request.user, pk=pk)
    attachment = Attachment.objects.select_related("document", "message__communication").get(
        pk=attachment_pk, message__communication=current
    )
    stored = attachment.document.file if attachment.document_id else attachment.file
    try:
        handle = stored.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("The file is missing.") from None
    record_download(user=request.user, attachment=attachment, request=request)
    content_type = attachment.content_type if attachment.content_type in SAFE_DOWNLOAD_TYPES else None
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=attachment.filename,
        content_type=content_type or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


# --- New communication ----------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@inbox_view
def communication_new(request):
    """Start an SMS (pick the sending line) or an email to a visible patient."""
    user = request.user
    if request.method == "POST":
        return _new_post(request)
    if "q" in request.GET and is_partial(request):
        results = search_visible_patients(user, request.GET["q"])
        return render(request, T + "_new_results.html", {"results": results, "q": request.GET["q"]})
    patient = None
    if request.GET.get("patient"):
        patient_id = int_or_none(request.GET["patient"])
        patient = _new_patient(user, patient_id)
    context = _new_context(user, patient)
    if not is_partial(request):
        state = ListState(folder=folders_for(user)[0])
        page = {"active_nav": "inbox", "state": state, "new_dialog": True}
        return render(
            request,
            PAGE,
            {**page, **context, **nav_context(user, state, with_counts=False), **rows_context(user, state)},
        )
    template = "_new_body.html" if request.htmx.target == "new-body" else "_new.html"
    return render(request, T + template, context)


def _new_patient(user, patient_id: int | None) -> Patient:
    return patients_visible_to(user).prefetch_related("contact_methods").get(pk=patient_id)


def _new_context(
    user, patient: Patient | None, form: NewCommunicationForm | None = None, error: str = ""
) -> dict:
    phones, emails = [], []
    if patient is not None:
        for method in patient.contact_methods.all():
            (phones if method.kind == ContactKind.PHONE else emails).append(method)
    data = form.data if form is not None else {}
    channel = data.get("channel") or (Channel.SMS.value if phones or not emails else Channel.EMAIL.value)
    return {
        "patient": patient,
        "phones": phones,
        "emails": emails,
        "sending_lines": active_sending_lines(user),
        "values": {
            "channel": channel,
            "phone": data.get("phone", ""),
            "email": data.get("email", ""),
            "sending_line": data.get("sending_line", ""),
            "subject": data.get("subject", ""),
            "body": data.get("body", ""),
        },
        "error": error,
    }


def _new_post(request):
    user = request.user
    form = NewCommunicationForm(request.POST, user=user)
    message = ""
    if form.is_valid():
        try:
            created = start_communication(
                user=user,
                patient=form.cleaned_data["patient"],
                channel=form.cleaned_data["channel"],
                content=form.reply_content(),
                to=form.to,
                close=form.cleaned_data["close"],
                request=request,
            )
        except InboxError as error:
            message = str(error)
        else:
            if not is_partial(request):
                return redirect(deep_link(user, created))
            created = communication_for(user=user, pk=created.pk)
            response = render(request, T + "_new_response.html", _conversation(request, created))
            response["HX-Retarget"] = "#conversation-pane"
            response["HX-Reswap"] = "innerHTML"
            response["HX-Push-Url"] = current_state(request).open_url(created.pk)
            return changed(response, created, list_changed=True)
    else:
        message = form_error(form)
    if not is_partial(request):
        messages.error(request, message)
        return redirect(reverse("careportal:communication_new"))
    patient_id = int_or_none(request.POST.get("patient", ""))
    patient = _new_patient(user, patient_id) if patient_id else None
    context = _new_context(user, patient, form=form, error=message)
    return unprocessable(request, T + "_new_body.html", context, target="#new-body", swap="innerHTML")
