"""Admin Portal forms: they parse and validate input; the services decide and write."""

import datetime as dt
import re

import phonenumbers
from django import forms
from django.db.models import Q

from careportal.forms_patients import time_zone_choices
from careportal.models import Patient
from inbox.models import AuditEvent, InboundAddress, SendingLine

from .models import Region, User
from .services import published_roles

DAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]


def role_choices(current: str = "") -> list[tuple[str, str]]:
    """Roles of the published version (inactive ones marked); the user's current key is kept even when it is not
    published, so saving other fields never changes a role behind the administrator's back."""
    choices = [("", "No role")]
    for role in published_roles():
        choices.append((role.key, role.name if role.is_active else f"{role.name} (inactive)"))
    if current and current not in {key for key, _ in choices}:
        choices.append((current, f"{current} (not in the published version)"))
    return choices


def _active_users():
    return User.objects.filter(is_active=True).order_by("first_name", "last_name", "username")


class UserForm(forms.Form):
    """Create (with ``username`` and an optional password) or edit a user."""

    username = forms.CharField(
        max_length=150,
        help_text="Letters, digits and @ . + - _ only. Used to sign in.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    email = forms.EmailField(required=False, help_text="Where the invitation is sent.")
    title = forms.CharField(max_length=80, required=False, help_text="Shown beside the name, e.g. RN.")
    time_zone = forms.ChoiceField(choices=())
    role = forms.ChoiceField(
        choices=(), required=False, help_text="What the user sees and may do (Designer)."
    )
    regions = forms.ModelMultipleChoiceField(
        queryset=Region.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Regions narrow Inbox Full Patient to their patients. None means every patient.",
    )
    direct_line = forms.ModelChoiceField(
        queryset=SendingLine.objects.none(),
        required=False,
        empty_label="No direct line",
        label="Direct SMS line",
        help_text="Inbound SMS to this number is assigned to the user.",
    )
    email_alias = forms.ModelChoiceField(
        queryset=InboundAddress.objects.none(),
        required=False,
        empty_label="No email alias",
        help_text="Inbound email to this address is assigned to the user.",
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to email an invitation to set a password.",
    )

    def __init__(self, *args, user: User | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        current_zone = self.initial.get("time_zone") or (user.time_zone if user else "America/New_York")
        self.fields["time_zone"].choices = time_zone_choices(current_zone)
        self.fields["time_zone"].initial = current_zone
        self.fields["role"].choices = role_choices(user.role if user else "")
        mine = Q(owner=user) if user is not None and user.pk else Q(pk__in=[])
        self.fields["direct_line"].queryset = SendingLine.objects.filter(
            Q(owner__isnull=True) | mine
        ).order_by("label", "number")
        self.fields["email_alias"].queryset = InboundAddress.objects.filter(
            Q(owner__isnull=True) | mine
        ).order_by("address")
        if user is not None:  # editing: the username and password are not changed here
            del self.fields["username"]
            del self.fields["password"]

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if not re.fullmatch(r"[\w.@+-]+", username):
            raise forms.ValidationError("Use only letters, digits and @ . + - _ in a username.")
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(f"The username “{username}” is taken.")
        return username

    def clean_email(self):
        """One account per address: invitations and password resets go by email."""
        email = self.cleaned_data["email"].strip().lower()
        others = User.objects.filter(email__iexact=email)
        if self.user is not None and self.user.pk:
            others = others.exclude(pk=self.user.pk)
        if email and others.exists():
            raise forms.ValidationError(f"Another user already has the email address {email}.")
        return email


class PatientSearchForm(forms.Form):
    q = forms.CharField(max_length=100, required=False)


class GrantForm(forms.Form):
    patient = forms.ModelChoiceField(
        queryset=Patient.objects.all(), error_messages={"invalid_choice": "That patient does not exist."}
    )


# --- Feature settings --------------------------------------------------------------------------------------------


class InboxNotificationsForm(forms.Form):
    is_enabled = forms.BooleanField(required=False, label="Open notifications in the Inbox")

    def value(self) -> dict:
        return {}


class BusinessHoursForm(forms.Form):
    is_enabled = forms.BooleanField(required=False, label="Enforce chat business hours")
    days = forms.TypedMultipleChoiceField(
        choices=DAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "Choose days of the week."},
    )
    start = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    time_zone = forms.ChoiceField(choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices(self.initial.get("time_zone", ""))

    def clean(self):
        data = super().clean()
        if data.get("is_enabled") and not data.get("days"):
            self.add_error("days", "Choose at least one day, or turn business hours off.")
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", "The end time must be after the start time.")
        return data

    def value(self) -> dict:
        data = self.cleaned_data
        return {
            "days": sorted(data["days"]),
            "start": data["start"].strftime("%H:%M"),
            "end": data["end"].strftime("%H:%M"),
            "time_zone": data["time_zone"],
        }


class IdleTimeoutForm(forms.Form):
    is_enabled = forms.BooleanField(required=False, label="Sign out idle sessions")
    minutes = forms.IntegerField(
        min_value=1,
        max_value=1440,
        error_messages={
            "min_value": "Use at least 1 minute.",
            "max_value": "Use at most 1,440 minutes (24 hours).",
        },
    )

    def value(self) -> dict:
        return {"minutes": self.cleaned_data["minutes"]}


# --- Sending lines and inbound addresses -------------------------------------------------------------------------


class SendingLineForm(forms.Form):
    number = forms.CharField(max_length=40, help_text="With the country code, e.g. +1 617 555 0100.")
    label = forms.CharField(
        max_length=60, required=False, help_text="Shown instead of the number, e.g. Main clinic."
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    owner = forms.ModelChoiceField(
        queryset=_active_users(),
        required=False,
        empty_label="Shared line (no owner)",
        help_text="A user's direct line: inbound SMS to it is assigned to them.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = _active_users()

    def clean_number(self) -> str:
        raw = self.cleaned_data["number"].strip()
        try:
            parsed = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            raise forms.ValidationError(
                f"“{raw}” is not a phone number. Enter it with the country code, e.g. +1 617 555 0100."
            ) from None
        if not phonenumbers.is_possible_number(parsed):
            raise forms.ValidationError(
                f"“{raw}” has the wrong number of digits for a phone number in that country."
            )
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class LineSenderForm(forms.Form):
    """A user to add to a line's senders. Whether they may be added (active) is the service's rule."""

    user = forms.ModelChoiceField(
        queryset=User.objects.all(),
        error_messages={
            "required": "Choose the person who may send from this line.",
            "invalid_choice": "That user does not exist.",
        },
    )


def line_sender_choices(senders) -> list[User]:
    """Active users who are not among a line's ``senders`` yet, for the "Add a sender" picker."""
    return list(_active_users().exclude(pk__in=[u.pk for u in senders]))


class InboundAddressForm(forms.Form):
    address = forms.EmailField(max_length=254, help_text="Stored in lower case.")
    label = forms.CharField(max_length=60, required=False)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    owner = forms.ModelChoiceField(
        queryset=_active_users(),
        required=False,
        empty_label="Shared address (no owner)",
        help_text="A user's email alias: inbound mail to it is assigned to them.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = _active_users()

    def clean_address(self) -> str:
        return self.cleaned_data["address"].strip().lower()


# --- Audit log filters -------------------------------------------------------------------------------------------


class AuditFilterForm(forms.Form):
    actor = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, empty_label="Anyone", label="Who"
    )
    patient = forms.CharField(
        max_length=40,
        required=False,
        label="Patient",
        widget=forms.TextInput(attrs={"placeholder": "ID or MRN"}),
    )
    action = forms.ChoiceField(choices=(), required=False, label="Action")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].queryset = User.objects.order_by("first_name", "last_name", "username")
        self.fields["action"].choices = [("", "Any action"), *AuditEvent.Action.choices]

    def clean_patient(self) -> Patient | None:
        value = self.cleaned_data["patient"].strip()
        if not value:
            return None
        patient = Patient.objects.filter(mrn__iexact=value).first()
        if patient is None and value.isdigit():
            patient = Patient.objects.filter(pk=int(value)).first()
        if patient is None:
            raise forms.ValidationError(f"No patient has the ID or MRN “{value}”.")
        return patient

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def bounds(self, zone) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The date range as aware datetimes in the viewer's zone: from the start of the first day (inclusive) to
        the start of the day after the last (exclusive)."""
        start, end = self.cleaned_data.get("date_from"), self.cleaned_data.get("date_to")
        since = dt.datetime.combine(start, dt.time.min, tzinfo=zone) if start else None
        until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone) if end else None
        return since, until
