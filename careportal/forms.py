"""Forms of the Care Portal Inbox: they turn what the Inbox page submits (query strings and form posts) into the
arguments of one selector or service call. Permission and business rules stay in the services."""

from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from adminportal.models import User
from careportal.access import patients_visible_to
from careportal.models import Contact
from inbox.folders import Folder
from inbox.models import Channel, Communication, SendingLine
from inbox.selectors import (
    ALL_FILTER_CHANNELS,
    ALL_STATUSES,
    FolderFilters,
    active_sending_lines,
    search_term,
)
from inbox.services import ReplyContent

STATUS_ORDER = ("open", "closed")
CHANNEL_ORDER = ("sms", "email", "chat")


# --- Folder filters in the query string --------------------------------------------------------------------


def folder_filters(params: QueryDict) -> FolderFilters:
    """``?status=open&channel=sms&unassigned=1&q=…`` as ``FolderFilters``. A filter left out of the query means
    "all" (every chip on, the default); one given only as an empty value (``?status=``) means none chosen — the
    filter form sends an empty value beside its chips, so turning every chip of a group off says so, and the list is
    empty rather than silently everything. Unknown values are ignored (as if left out)."""
    return FolderFilters(
        statuses=chosen(params, "status", ALL_STATUSES),
        channels=chosen(params, "channel", ALL_FILTER_CHANNELS),
        unassigned_only=params.get("unassigned") == "1",
        query=search_term(params.get("q", "")),
    )


def chosen(params: QueryDict, key: str, every: frozenset[str]) -> frozenset[str]:
    values = params.getlist(key)
    picked = frozenset(v for v in values if v in every)
    if picked:
        return picked
    return frozenset() if values and all(v == "" for v in values) else every


def filter_query(folder: Folder, filters: FolderFilters, **extra) -> str:
    """The canonical query string of ``filters`` (defaults left out; a group with nothing chosen as its empty value,
    ``status=``) plus ``extra`` parameters that are set."""
    pairs: list[tuple[str, str]] = []
    if filters.statuses != ALL_STATUSES:
        pairs += [("status", s) for s in STATUS_ORDER if s in filters.statuses] or [("status", "")]
    if filters.channels != ALL_FILTER_CHANNELS:
        pairs += [("channel", c) for c in CHANNEL_ORDER if c in filters.channels] or [("channel", "")]
    if filters.unassigned_only and folder.is_shared:
        pairs.append(("unassigned", "1"))
    if filters.query:
        pairs.append(("q", filters.query))
    pairs += [(key, str(value)) for key, value in extra.items() if value not in (None, "")]
    return urlencode(pairs)


# --- Fields ----------------------------------------------------------------------------------------------


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several uploads under one name (Django's documented pattern)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data if item]
        return [single(data, initial)] if data else []


class IdListField(forms.Field):
    """Several integer ids under one name (``?document=3&document=7``)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> tuple[int, ...]:
        if not value:
            return ()
        try:
            return tuple(dict.fromkeys(int(item) for item in value))
        except (TypeError, ValueError):
            raise ValidationError("Choose documents from the list.", code="invalid") from None


class CloseChoiceField(forms.TypedChoiceField):
    """Which Send button was pressed: "Send and Close" (the default) or "Send and keep Open"."""

    def __init__(self, **kwargs):
        super().__init__(
            choices=[("1", "Send and Close"), ("0", "Send and keep Open")],
            coerce=lambda value: value == "1",
            empty_value=True,
            required=False,
            **kwargs,
        )


# --- Forms -----------------------------------------------------------------------------------------------


class ReplyForm(forms.Form):
    """The reply box. Email sends ``body_html`` (sanitised by ``send_reply``); SMS and chat send ``body``."""

    body = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    body_html = forms.CharField(required=False, strip=False, widget=forms.HiddenInput)
    is_secure = forms.BooleanField(required=False)
    sending_line = forms.ModelChoiceField(
        queryset=SendingLine.objects.none(), required=False, empty_label=None
    )
    document = IdListField(required=False)
    uploads = MultipleFileField(required=False)
    close = CloseChoiceField()
    # Set by the confirmation that names the recipient of a reply to a sender linked to no patient (item 16).
    confirm_unlinked_recipient = forms.BooleanField(required=False)

    def __init__(self, *args, communication: Communication, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.communication = communication
        self.fields["sending_line"].queryset = active_sending_lines(user)

    def reply_content(self) -> ReplyContent:
        data = self.cleaned_data
        is_email = self.communication.is_email
        return ReplyContent(
            body="" if is_email and data["body_html"] else data["body"],
            body_html=data["body_html"] if is_email else "",
            is_secure=data["is_secure"] and is_email,
            sending_line=data["sending_line"] if self.communication.channel == Channel.SMS else None,
            document_ids=data["document"],
            uploads=tuple(data["uploads"]),
        )


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Communication.Status.choices)


class AssignForm(forms.Form):
    """An assignee id, or empty to unassign. Whether that person may be assigned is the service's rule."""

    assignee = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True),
        required=False,
        error_messages={"invalid_choice": "Choose a person from the list."},
    )


class LinkForm(forms.Form):
    """Link to a patient, or to one of a patient's contacts (which implies the patient)."""

    patient = forms.ModelChoiceField(
        queryset=None, required=False, error_messages={"invalid_choice": "Choose a patient from the list."}
    )
    contact = forms.ModelChoiceField(
        queryset=None, required=False, error_messages={"invalid_choice": "Choose a contact from the list."}
    )
    remember = forms.BooleanField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        visible = patients_visible_to(user)
        self.fields["patient"].queryset = visible
        self.fields["contact"].queryset = Contact.objects.filter(patient__in=visible).select_related(
            "patient"
        )

    def clean(self):
        data = super().clean()
        patient, contact = data.get("patient"), data.get("contact")
        if self.errors:
            return data
        if contact is not None:
            if patient is not None and contact.patient_id != patient.pk:
                raise ValidationError("That contact does not belong to the chosen patient.")
            data["patient"] = contact.patient
        elif patient is None:
            raise ValidationError("Choose the patient (or contact) this communication is from.")
        return data


class NewCommunicationForm(forms.Form):
    """Start an SMS (on a chosen sending line) or an email to a visible patient."""

    CHANNELS = [(Channel.SMS.value, "SMS"), (Channel.EMAIL.value, "Email")]

    patient = forms.ModelChoiceField(
        queryset=None, error_messages={"invalid_choice": "Choose a patient from the list."}
    )
    channel = forms.ChoiceField(choices=CHANNELS, widget=forms.RadioSelect)
    phone = forms.CharField(required=False, max_length=40)
    email = forms.CharField(required=False, max_length=254)
    sending_line = forms.ModelChoiceField(
        queryset=SendingLine.objects.none(),
        required=False,
        error_messages={"invalid_choice": "Choose an active sending line."},
    )
    subject = forms.CharField(required=False, max_length=255)
    body = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    close = CloseChoiceField()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["patient"].queryset = patients_visible_to(user)
        self.fields["sending_line"].queryset = active_sending_lines(user)

    def clean(self):
        data = super().clean()
        if data.get("channel") == Channel.SMS and not data.get("sending_line"):
            self.add_error("sending_line", "Pick the sending line the SMS goes out from.")
        if data.get("channel") == Channel.EMAIL and not data.get("subject", "").strip():
            self.add_error("subject", "Give the email a subject.")
        return data

    @property
    def to(self) -> str:
        data = self.cleaned_data
        return data["phone"] if data["channel"] == Channel.SMS else data["email"]

    def reply_content(self) -> ReplyContent:
        data = self.cleaned_data
        return ReplyContent(
            body=data["body"],
            subject=data["subject"].strip() if data["channel"] == Channel.EMAIL else "",
            sending_line=data["sending_line"] if data["channel"] == Channel.SMS else None,
        )
