"""The patient simulator's forms: each validates who writes (through the access rule) and what, so that bad input
sends nothing."""

import phonenumbers
from django import forms
from django.db.models import BooleanField, ExpressionWrapper, F, Q
from django.urls import reverse

from inbox.models import InboundAddress, SendingLine

from . import simulator

MAX_SMS_CHARS = 1600
MAX_EMAIL_CHARS = 20_000


class WriterField(forms.ChoiceField):
    """A writer ``<select>`` whose value ``clean`` turns into a ``simulator.Writer`` the user may write as."""

    def __init__(self, *, user, unknown: bool = True, **kwargs):
        super().__init__(choices=simulator.writer_choices(user, unknown=unknown), **kwargs)
        self.user = user

    def valid_value(self, value) -> bool:
        return True  # any visible patient or contact, not only the ones listed; checked in clean()

    def clean(self, value):
        value = super().clean(value)
        writer = simulator.resolve_writer(self.user, value)
        if writer is None:
            raise forms.ValidationError("Choose a patient, a contact or an unknown sender from the list.")
        return writer


def first_value(field: forms.ChoiceField) -> str:
    for value, label in field.choices:
        if isinstance(label, list | tuple):  # a group
            if label:
                return label[0][0]
        else:
            return value
    return ""


class SmsForm(forms.Form):
    writer = forms.Field()  # replaced in __init__
    line = forms.ModelChoiceField(
        queryset=SendingLine.objects.none(), label="To line", empty_label=None, error_messages={
            "invalid_choice": "Choose an active sending line.", "required": "Choose an active sending line."
        },
    )  # fmt: skip
    from_number = forms.CharField(
        label="From number", required=False, max_length=20,
        help_text="For an unknown sender; left empty, a made-up +1555 number is used.",
    )  # fmt: skip
    body = forms.CharField(
        label="Message", max_length=MAX_SMS_CHARS, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write the text message."},
    )  # fmt: skip

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, prefix="sms", **kwargs)
        self.fields["writer"] = WriterField(user=user, label="From")
        # Shared lines before people's direct lines, labelled before bare numbers.
        self.fields["line"].queryset = (
            SendingLine.objects.filter(is_active=True)
            .annotate(is_unlabelled=ExpressionWrapper(Q(label=""), output_field=BooleanField()))
            .order_by(F("owner_id").asc(nulls_first=True), "is_unlabelled", "label", "number")
        )

    def clean_from_number(self) -> str:
        value = self.cleaned_data["from_number"].strip()
        if not value:
            return ""
        try:
            number = phonenumbers.parse(value, "US")
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_possible_number(number):
            raise forms.ValidationError("Enter a phone number, e.g. +1 555 010 2030.")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def clean(self):
        data = super().clean()
        writer = data.get("writer")
        if writer is None:
            return data
        if writer.is_unknown:
            data["sender"] = data.get("from_number") or simulator.unknown_phone()
        elif data.get("from_number"):
            self.add_error("from_number", "Leave this empty: the message comes from the number on file.")
        elif not writer.phone:
            self.add_error("writer", f"{writer.name} has no phone number on file.")
        else:
            data["sender"] = writer.phone
        return data


class EmailForm(forms.Form):
    ROUTES = [("smtp", "SMTP (the inbound mail server)"), ("webhook", "Signed email webhook")]

    writer = forms.Field()  # replaced in __init__
    to = forms.ModelChoiceField(
        queryset=InboundAddress.objects.none(), label="To address", empty_label=None, error_messages={
            "invalid_choice": "Choose an active inbound address.", "required": "Choose an active inbound address."
        },
    )  # fmt: skip
    thread = forms.TypedChoiceField(label="Thread", required=False, coerce=int, empty_value=None)
    from_address = forms.EmailField(
        label="From address", required=False, max_length=254,
        help_text="For an unknown sender; left empty, a made-up address is used.",
    )  # fmt: skip
    subject = forms.CharField(label="Subject", required=False, max_length=200)
    body = forms.CharField(
        label="Message", max_length=MAX_EMAIL_CHARS, widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Write the email."},
    )  # fmt: skip
    route = forms.ChoiceField(
        label="Deliver through", choices=ROUTES, initial="smtp", widget=forms.RadioSelect
    )

    def __init__(self, *args, user, writer_value: str | None = None, **kwargs):
        super().__init__(*args, prefix="email", **kwargs)
        self.user = user
        self.fields["writer"] = writer = WriterField(user=user, label="From")
        # Picking a writer offers that writer's threads only (the Thread field comes back from the server).
        self.fields["writer"].widget.attrs.update({
            "hx-get": reverse("simulator:threads"), "hx-trigger": "change", "hx-target": "#email-thread-field",
            "hx-swap": "outerHTML",
        })  # fmt: skip
        self.fields["to"].queryset = InboundAddress.objects.filter(is_active=True).order_by(
            F("owner_id").asc(nulls_first=True), "address"
        )
        if writer_value is None:  # the writer posted, else the one the list shows first
            writer_value = self.data.get(self.add_prefix("writer")) if self.is_bound else first_value(writer)
        self.fields["thread"].choices = simulator.thread_choices(user, writer_value or "")
        self.fields["thread"].valid_value = lambda value: True  # any thread of the writer; checked in clean()

    def clean(self):
        data = super().clean()
        writer = data.get("writer")
        if writer is None:
            return data
        thread_id = data.get("thread")
        data["reply_to"] = None
        if thread_id is not None:
            if writer.is_unknown:
                self.add_error(
                    "thread", "An unknown sender has no thread to reply in: choose New conversation."
                )
                return data
            reply_to = simulator.reply_threads(self.user, writer).filter(pk=thread_id).first()
            if reply_to is None:
                self.add_error("thread", f"That thread is not one of {writer.name}'s emails.")
                return data
            data["reply_to"] = reply_to
            subject = reply_to.subject or reply_to.communication.subject
            data["subject"] = data.get("subject") or (
                subject if subject.lower().startswith("re:") else f"Re: {subject}"
            )
        elif not data.get("subject"):
            self.add_error("subject", "Give the new email a subject.")
        if writer.is_unknown:
            data["sender"] = data.get("from_address") or simulator.unknown_email()
        elif data.get("from_address"):
            self.add_error("from_address", "Leave this empty: the email comes from the address on file.")
        elif not writer.email:
            self.add_error("writer", f"{writer.name} has no email address on file.")
        else:
            data["sender"] = writer.email
        return data


class ChatForm(forms.Form):
    writer = forms.Field()  # replaced in __init__

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, prefix="chat", **kwargs)
        self.fields["writer"] = WriterField(user=user, unknown=False, label="Chat as")
