"""Secure email: the patient receives an ordinary email with a link, never the content."""

from django.conf import settings
from django.core import signing
from django.utils.html import format_html

SALT = "inbox.secure-message"
TOKEN_MAX_AGE = 14 * 24 * 3600  # links expire after two weeks


def make_token(message) -> str:
    return signing.dumps(
        {"c": message.communication_id, "m": message.pk, "to": message.recipient_address}, salt=SALT
    )


def read_token(token: str, *, max_age: int = TOKEN_MAX_AGE) -> dict:
    """The signed claims, or ``signing.BadSignature`` / ``signing.SignatureExpired``."""
    return signing.loads(token, salt=SALT, max_age=max_age)


def secure_url(message) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/secure/{make_token(message)}/"


def secure_notice(message) -> tuple[str, str]:
    """Text and HTML of the notice email: who wrote, and the link; no message content."""
    url = secure_url(message)
    team = settings.CARE_TEAM_NAME
    text = (
        f"You have a new secure message from {team}.\n\n"
        f"Open it here: {url}\n\n"
        "For your privacy the message is not included in this email. You will be asked for a one-time code "
        "sent to this address."
    )
    html = format_html(
        '<p>You have a new secure message from {}.</p><p><a href="{}">Read your secure message</a></p>'
        "<p>For your privacy the message is not included in this email. You will be asked for a one-time code "
        "sent to this address.</p>",
        team,
        url,
    )
    return text, str(html)
