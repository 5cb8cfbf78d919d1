"""Recognising an inbound sender: an address or number that matches exactly one patient (or one contact of one
patient) is linked; zero or several matches make the communication Unrecognized and the candidates are kept."""

from dataclasses import dataclass

from careportal.models import Contact, ContactKind, Patient, PatientContactMethod
from inbox.selectors import normalize_phone

from .common import safe_text


@dataclass(frozen=True)
class Recognition:
    """Who sent it: a patient (and maybe one of their contacts), or nobody with the candidate patient ids."""

    patient: Patient | None = None
    contact: Contact | None = None
    candidate_ids: tuple[int, ...] = ()

    @property
    def is_recognized(self) -> bool:
        return self.patient is not None

    @property
    def sender_name(self) -> str:
        """The name a message from this sender is shown with: the contact's or the patient's ("" when unknown)."""
        person = self.contact or self.patient
        return person.full_name[:200] if person is not None else ""


def normalize_email(address: str) -> str:
    """An address as matched and shown: storable text (``safe_text``: no NUL), trimmed, lower-cased."""
    return safe_text(address or "").strip().lower()


def normalize_sender_phone(number: str) -> str:
    """E.164 when the number parses; otherwise as sent (short codes, alphanumeric senders), as storable text."""
    number = safe_text(number or "").strip()
    return normalize_phone(number) or number


def _decide(methods: list, contacts: list) -> Recognition:
    """The rule, for the contact methods and contacts that carry one sender's address or number."""
    patient_ids = {method.patient_id for method in methods}
    all_ids = patient_ids | {c.patient_id for c in contacts}
    if len(all_ids) != 1:
        return Recognition(candidate_ids=tuple(sorted(all_ids)))
    if not patient_ids and len(contacts) == 1:
        return Recognition(patient=contacts[0].patient, contact=contacts[0])
    # The patient's own address, or several of one patient's contacts share it: the patient is known, the
    # contact is not, so the communication links to the patient.
    return Recognition(patient=methods[0].patient if methods else contacts[0].patient)


def _recognize_many(kind: str, values: set[str], contact_field: str) -> dict[str, Recognition]:
    """Recognition of several normalised values with two queries in all (batch ingestion)."""
    values = {value for value in values if value}
    if not values:
        return {}
    methods: dict[str, list] = {value: [] for value in values}
    for method in PatientContactMethod.objects.filter(kind=kind, value__in=values).select_related("patient"):
        methods.setdefault(method.value, []).append(method)
    contacts: dict[str, list] = {value: [] for value in values}
    for contact in Contact.objects.filter(**{f"{contact_field}__in": values}).select_related("patient"):
        contacts.setdefault(getattr(contact, contact_field), []).append(contact)
    return {value: _decide(methods[value], contacts[value]) for value in values}


def _recognize(kind: str, value: str, contact_field: str) -> Recognition:
    if not value:
        return Recognition()
    return _recognize_many(kind, {value}, contact_field)[value]


def recognize_email(address: str) -> Recognition:
    """Emails are compared lower-case against contact methods and contacts' emails."""
    return _recognize(ContactKind.EMAIL, normalize_email(address), "email")


def recognize_phone(number: str) -> Recognition:
    """Numbers are compared in E.164 against contact methods and contacts' phones."""
    return _recognize(ContactKind.PHONE, normalize_sender_phone(number), "phone")


def recognize_phones(numbers) -> dict[str, Recognition]:
    """``recognize_phone`` for several numbers at once (already in E.164 or as sent), keyed by those numbers."""
    return _recognize_many(ContactKind.PHONE, set(numbers), "phone")
