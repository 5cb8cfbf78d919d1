"""Admin Portal → Integrations: Inbox API tokens (created for a user whose role holds Inbox API, shown once,
revocable) and outbound webhook subscriptions (secret shown once, deliveries logged, a paused subscription can be
resumed). Administrators only, like every Admin Portal page; every change is audited."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse

from designer.models import Policy
from designer.selectors import role_keys_with_policy
from inbox.api import tokens, webhooks

from .models import ApiToken, User, WebhookEvent, WebhookSubscription
from .views import _render, admin_view

RECENT_DELIVERIES = 50


def api_users():
    """Active users whose published role holds Inbox API: the only ones a token or subscription can be for."""
    return User.objects.filter(is_active=True, role__in=role_keys_with_policy(Policy.INBOX_API)).order_by(
        "first_name", "last_name", "username"
    )


class _UserChoice(forms.ModelChoiceField):
    def label_from_instance(self, user) -> str:
        return f"{user.full_name} ({user.username})"


class TokenForm(forms.Form):
    prefix = "token"  # two forms on one page: distinct field ids and names
    user = _UserChoice(
        queryset=User.objects.none(),
        label="Integration user",
        empty_label="Choose a user…",
        help_text="The token acts as this user: their role's Inbox API policy and patient access.",
        error_messages={
            "invalid_choice": "Choose a user whose role holds Inbox API.",
            "required": "Choose a user.",
        },
    )
    name = forms.CharField(max_length=80, label="Name", help_text="What uses it, e.g. “EHR sync”.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = api_users()


class WebhookForm(forms.Form):
    prefix = "webhook"
    user = _UserChoice(
        queryset=User.objects.none(),
        label="Integration user",
        empty_label="Choose a user…",
        help_text="Events are sent only about communications this user may see.",
        error_messages={
            "invalid_choice": "Choose a user whose role holds Inbox API.",
            "required": "Choose a user.",
        },
    )
    name = forms.CharField(max_length=80)
    url = forms.CharField(
        max_length=500, label="HTTPS address", widget=forms.URLInput(attrs={"placeholder": "https://"})
    )
    event_types = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Events",
        error_messages={"required": "Choose at least one event."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = api_users()


def _page(request, *, token_form=None, webhook_form=None, new_token=None, new_subscription=None, status=200):
    context = {
        "section": "integrations",
        "tokens": ApiToken.objects.select_related("user", "created_by"),
        "subscriptions": WebhookSubscription.objects.select_related("user"),
        "token_form": token_form or TokenForm(),
        "webhook_form": webhook_form or WebhookForm(),
        "new_token": new_token,
        "new_subscription": new_subscription,
        "has_api_users": api_users().exists(),
    }
    response = _render(request, "adminportal/integrations/page.html", context)
    response.status_code = status
    if new_token or new_subscription:
        response["Cache-Control"] = (
            "no-store"  # a secret shown once is never kept by a cache or the back button
        )
    return response


@admin_view("GET")
def integrations(request):
    return _page(request)


@admin_view("POST")
def token_create(request):
    """Create a token and show it once: the page is rendered in this response, never stored or redirected to."""
    form = TokenForm(request.POST)
    if form.is_valid():
        try:
            token, raw = tokens.create_token(
                actor=request.user,
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
                request=request,
            )
        except tokens.TokenError as error:
            form.add_error(None, str(error))
        else:
            return _page(request, new_token={"token": token, "raw": raw})
    return _page(request, token_form=form, status=422)


@admin_view("POST")
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk)
    tokens.revoke_token(actor=request.user, token=token, request=request)
    messages.success(request, f"The token “{token.name}” ({token.prefix}…) is revoked.")
    return redirect(reverse("adminportal:integrations"))


@admin_view("POST")
def webhook_create(request):
    form = WebhookForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            subscription = webhooks.create_subscription(
                actor=request.user, user=data["user"], name=data["name"], url=data["url"],
                event_types=data["event_types"], request=request,
            )  # fmt: skip
        except webhooks.WebhookError as error:
            form.add_error("url" if "address" in str(error) else None, str(error))
        else:
            return _page(request, new_subscription=subscription)
    return _page(request, webhook_form=form, status=422)


@admin_view("GET")
def webhook_detail(request, pk: int):
    subscription = get_object_or_404(WebhookSubscription.objects.select_related("user"), pk=pk)
    deliveries = subscription.deliveries.order_by("-created_at", "-id")[:RECENT_DELIVERIES]
    return _render(
        request,
        "adminportal/integrations/webhook.html",
        {"section": "integrations", "subscription": subscription, "deliveries": deliveries},
    )


@admin_view("POST")
def webhook_resume(request, pk: int):
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    webhooks.resume(actor=request.user, subscription=subscription, request=request)
    messages.success(request, f"“{subscription.name}” is resumed; waiting events are being sent.")
    return redirect(reverse("adminportal:webhook_detail", args=[pk]))


@admin_view("POST")
def webhook_toggle(request, pk: int):
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    webhooks.set_active(
        actor=request.user, subscription=subscription, is_active=not subscription.is_active, request=request
    )
    state = "disabled" if subscription.is_active else "enabled"
    messages.success(request, f"“{subscription.name}” is {state}.")
    return redirect(reverse("adminportal:webhook_detail", args=[pk]))
