"""Internal notes in a conversation and the @mention autocomplete of the note box (DESIGN.md: Notifications).

A note is posted from the "Internal note" tab of the reply box; the answer is a fresh note box and the conversation's
messages (out of band), so a draft in the Reply tab is never touched."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from inbox.errors import InboxError
from inbox.notifications import mentionable_users
from inbox.selectors import communication_for
from inbox.services import NOTE_MAX_LENGTH, add_internal_note

from .inbox import messages_context
from .inbox_state import inbox_view, is_partial, next_url, unprocessable

T = "careportal/inbox/"
MENTION_OPTIONS = 8


def note_context(communication, *, draft: str = "", error: str = "", active: bool = False) -> dict:
    return {
        "c": communication,
        "note": {"draft": draft, "error": error, "active": active, "max_length": NOTE_MAX_LENGTH},
    }


@login_required
@require_POST
@inbox_view
def communication_note(request, pk: int):
    """Add an internal note (never sent to the patient). Refused notes (empty, too long, a mention of someone who
    cannot see the communication) answer 422 with the draft kept and nothing stored."""
    current = communication_for(user=request.user, pk=pk)
    body = request.POST.get("body", "")
    try:
        add_internal_note(user=request.user, communication=current, body=body, request=request)
    except InboxError as error:
        if not is_partial(request):
            messages.error(request, str(error))
            return redirect(next_url(request, current))
        context = note_context(current, draft=body, error=str(error), active=True)
        return unprocessable(
            request, T + "_note_form.html", context, target=f"#note-panel-{current.pk}", swap="outerHTML"
        )
    if not is_partial(request):
        messages.success(request, "Internal note added.")
        return redirect(next_url(request, current))
    current = communication_for(user=request.user, pk=pk)
    context = {**note_context(current, active=True), **messages_context(current), "messages_oob": True}
    return render(request, T + "_note_response.html", context)


@login_required
@require_GET
@inbox_view
def mention_options(request, pk: int):
    """The people a note on this communication can mention (active Inbox users who can see it), narrowed by ``q``."""
    current = communication_for(user=request.user, pk=pk)
    query = request.GET.get("q", "")[:150]
    users = mentionable_users(current, query=query, limit=MENTION_OPTIONS)
    return render(request, T + "_mention_options.html", {"c": current, "users": users, "q": query})
