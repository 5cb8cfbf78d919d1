"""Message-template placeholders: an allow-list filled from the patient and the sending user.

Templates are filled by substitution, never by a template engine, so a template body cannot run code or read
anything but these values.
"""

import re

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")

PLACEHOLDERS = {
    "patient.first_name": lambda patient, user: patient.first_name if patient else "",
    "patient.last_name": lambda patient, user: patient.last_name if patient else "",
    "patient.preferred_name": lambda patient, user: (
        (patient.preferred_name or patient.first_name) if patient else ""
    ),
    "patient.full_name": lambda patient, user: patient.full_name if patient else "",
    "user.first_name": lambda patient, user: user.first_name,
    "user.last_name": lambda patient, user: user.last_name,
    "user.full_name": lambda patient, user: user.full_name,
    "user.title": lambda patient, user: user.title,
}


def unknown_placeholders(text: str) -> list[str]:
    """Placeholders in ``text`` that cannot be filled (refused when a template is saved)."""
    names = {m.group(1) for m in PLACEHOLDER.finditer(text)}
    stray = re.findall(r"\{\{[^}]*\}\}", PLACEHOLDER.sub("", text))
    return sorted(names - PLACEHOLDERS.keys()) + stray


def fill(text: str, *, patient, user) -> str:
    """``text`` with every known placeholder replaced by the patient's or user's value (unknown ones kept)."""

    def replace(match: re.Match) -> str:
        resolver = PLACEHOLDERS.get(match.group(1))
        return resolver(patient, user) if resolver else match.group(0)

    return PLACEHOLDER.sub(replace, text)
