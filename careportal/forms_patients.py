"""The patient profile form: names, demographics, preferred language, time zone and address."""

import datetime as dt
import re
from zoneinfo import available_timezones

from django import forms
from django.conf import global_settings
from django.utils import timezone

from .models import Patient

# IANA areas offered in the time-zone picker; legacy aliases ("US/Eastern", "EST5EDT") stay valid for a patient
# who already has one, but are not offered to new ones.
TIME_ZONE_AREAS = (
    "America",
    "Pacific",
    "Atlantic",
    "Europe",
    "Africa",
    "Asia",
    "Australia",
    "Indian",
    "Antarctica",
)
OLDEST_BIRTH_DATE = dt.date(1900, 1, 1)


def language_choices(current: str = "") -> list[tuple[str, str]]:
    """Languages by English name (Django's list of BCP 47 tags), plus the patient's current tag if it is not in it,
    so that saving other fields never changes the language behind the user's back."""
    choices = sorted(((code, str(name)) for code, name in global_settings.LANGUAGES), key=lambda c: c[1])
    if current and current.lower() not in {code for code, _ in choices}:
        choices.insert(0, (current, current))
    return choices


def listed_language(tag: str) -> str:
    """The tag as the language list spells it ("es-MX" → "es-mx"); tags are case-insensitive (BCP 47)."""
    codes = {code for code, _ in global_settings.LANGUAGES}
    return tag.lower() if tag.lower() in codes else tag


def time_zone_choices(current: str = "") -> list:
    """IANA zones grouped by area ("America", "Europe", …) for a select with optgroups; UTC first."""
    zones = available_timezones()
    groups: dict[str, list[tuple[str, str]]] = {area: [] for area in TIME_ZONE_AREAS}
    for zone in sorted(zones):
        area, _, place = zone.partition("/")
        if area in groups and place:
            groups[area].append((zone, zone.replace("_", " ")))
    choices: list = [("UTC", "UTC")]
    if (
        current
        and current in zones
        and current != "UTC"
        and not any(current == value for options in groups.values() for value, _ in options)
    ):
        choices.append((current, current))
    choices.extend((area, options) for area, options in groups.items() if options)
    return choices


class PatientProfileForm(forms.ModelForm):
    preferred_language = forms.ChoiceField(label="Preferred language")
    time_zone = forms.ChoiceField(
        label="Time zone", help_text="Used to show the patient's local time and appointment times."
    )

    class Meta:
        model = Patient
        fields = [
            "first_name",
            "last_name",
            "preferred_name",
            "birth_date",
            "sex",
            "gender_identity",
            "pronouns",
            "preferred_language",
            "time_zone",
            "address_line1",
            "address_line2",
            "city",
            "state",
            "postal_code",
            "country",
        ]
        labels = {
            "first_name": "First name",
            "last_name": "Last name",
            "preferred_name": "Preferred name",
            "birth_date": "Date of birth",
            "gender_identity": "Gender identity",
            "address_line1": "Address",
            "address_line2": "Address line 2",
            "postal_code": "Postal code",
        }
        help_texts = {
            "preferred_name": "Shown instead of the first name across the portal.",
            "country": "Two-letter code, e.g. US.",
        }
        widgets = {
            "birth_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "pronouns": forms.TextInput(attrs={"placeholder": "e.g. she/her", "list": "pronoun-options"}),
            "country": forms.TextInput(attrs={"maxlength": 2, "autocapitalize": "characters"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current_language = self.instance.preferred_language if self.instance.pk else ""
        current_zone = self.instance.time_zone if self.instance.pk else ""
        self.fields["preferred_language"].choices = language_choices(current_language)
        if current_language:
            self.initial["preferred_language"] = listed_language(current_language)
        self.fields["time_zone"].choices = time_zone_choices(current_zone)
        self.fields["first_name"].widget.attrs["autocomplete"] = "off"
        self.fields["last_name"].widget.attrs["autocomplete"] = "off"

    def clean_first_name(self) -> str:
        return self.cleaned_data["first_name"].strip()

    def clean_last_name(self) -> str:
        return self.cleaned_data["last_name"].strip()

    def clean_birth_date(self) -> dt.date:
        born = self.cleaned_data["birth_date"]
        if born > timezone.localdate():
            raise forms.ValidationError("The date of birth cannot be in the future.")
        if born < OLDEST_BIRTH_DATE:
            raise forms.ValidationError("Enter a date of birth after 1900.")
        return born

    def clean_country(self) -> str:
        country = self.cleaned_data["country"].strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise forms.ValidationError("Enter a two-letter country code, e.g. US.")
        return country

    def clean_state(self) -> str:
        return self.cleaned_data["state"].strip()
