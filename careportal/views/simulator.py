"""The demo patient simulator page (``/demo/patient/``): 404 unless demo features are on (DEBUG or DEMO_MODE), for
signed-in staff only. Each form writes as a patient through the real ingestion path (``careportal.simulator``).

The sending views are async: the request they make goes to this very server, and under ``make run`` one daphne
process serves both; awaiting it (the blocking client on a thread of its own) leaves the process free to answer.
Their database work runs through ``sync_to_async``.
"""

import functools
from inspect import iscoroutinefunction

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import simulator
from ..forms_simulator import ChatForm, EmailForm, SmsForm

TEMPLATES = "careportal/simulator/"


def demo_only(view):
    """404 unless demo features are on: outside a demo the page does not exist, whoever asks."""

    def refuse():
        if not settings.DEMO_ENABLED:
            raise Http404("The patient simulator exists only in demo mode.")

    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            refuse()
            return await view(request, *args, **kwargs)
    else:

        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            refuse()
            return view(request, *args, **kwargs)

    return wrapper


def _page(request, *, sms_form=None, email_form=None, chat_form=None, status=200):
    user = request.user
    return render(
        request,
        TEMPLATES + "page.html",
        {
            "active_nav": "home",
            "sms_form": sms_form or SmsForm(user=user),
            "email_form": email_form or EmailForm(user=user),
            "chat_form": chat_form or ChatForm(user=user),
            "log": simulator.sent_log(request.session),
            "smtp_address": f"{settings.SMTP_HOST}:{settings.SMTP_PORT}",
        },
        status=status,
    )


@demo_only
@login_required
@require_GET
def page(request):
    return _page(request)


@demo_only
@login_required
@require_GET
def threads(request):
    """The email form's Thread field for the writer just picked (HTMX): that writer's threads only."""
    form = EmailForm(user=request.user, writer_value=request.GET.get("email-writer", ""))
    return render(request, TEMPLATES + "_thread_field.html", {"field": form["thread"]})


def _finish(request, item: simulator.Outgoing, outcome: simulator.Outcome):
    simulator.remember(
        request.session, channel=item.channel, summary=item.summary, route=item.route, outcome=outcome
    )
    level = messages.SUCCESS if outcome.is_ok else messages.ERROR
    messages.add_message(request, level, f"{item.channel} sent through {item.route}: {outcome.result}")
    return redirect("simulator:page")


async def _send(request, prepare):
    """Validate and build the item (database work, in a thread), deliver it over the network, log the outcome."""
    prepared = await sync_to_async(prepare)(request)
    if not isinstance(prepared, simulator.Outgoing):
        return prepared  # the page with the form's errors; nothing was sent
    outcome = await simulator.deliver(prepared)
    return await sync_to_async(_finish)(request, prepared, outcome)


def _prepare_sms(request):
    form = SmsForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, sms_form=form, status=400)
    data = form.cleaned_data
    return simulator.twilio_sms(
        server=simulator.server_of(request), sender=data["sender"], line=data["line"], body=data["body"],
        writer=data["writer"],
    )  # fmt: skip


def _prepare_email(request):
    form = EmailForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, email_form=form, status=400)
    data = form.cleaned_data
    to = data["to"].address
    raw = simulator.build_email(
        writer=data["writer"], sender=data["sender"], to=to, subject=data["subject"], body=data["body"],
        reply_to=data["reply_to"],
    )  # fmt: skip
    return simulator.email_item(
        server=simulator.server_of(request), route=data["route"], raw=raw, writer=data["writer"], sender=data["sender"],
        to=to, subject=data["subject"],
    )  # fmt: skip


@demo_only
@login_required
@require_POST
async def send_sms(request):
    return await _send(request, _prepare_sms)


@demo_only
@login_required
@require_POST
async def send_email(request):
    return await _send(request, _prepare_email)


@demo_only
@login_required
@require_POST
def open_chat(request):
    """The patient's real signed chat link, logged with a button that opens the chat page (nothing is sent: the
    newcomer writes on the patient's page, over its WebSocket)."""
    form = ChatForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, chat_form=form, status=400)
    writer = form.cleaned_data["writer"]
    link = simulator.chat_link(server=simulator.server_of(request), writer=writer)
    simulator.remember(
        request.session, channel="Chat", summary=f"Chat link for {writer.describe}", route="Signed chat link",
        outcome=simulator.Outcome(True, "Link ready: open it to write as the patient"), link=link,
    )  # fmt: skip
    messages.success(request, f"Chat link for {writer.name} ready: open it from the log below.")
    return redirect("simulator:page")
