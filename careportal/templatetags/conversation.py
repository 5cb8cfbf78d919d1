"""The open conversation's messages (``careportal/inbox/_message.html``, ``_messages.html``, ``_day_divider.html``)
built in Python, like the list rows: a conversation of 50 messages rendered as template nodes cost about 1,700
variable lookups and four date formats per message on every open, refresh and push."""

import functools

from django import template
from django.template.defaultfilters import filesizeformat
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from .portal import CHANNEL_ICONS, _esc, full_time, icon

register = template.Library()

_LOCK = icon("lock")
_PAPERCLIP = icon("paperclip")
_DELIVERY_ICONS = {"delivered": icon("check"), "sent": icon("check"), "failed": icon("alert")}
_DELIVERY_ICONS["undelivered"] = _DELIVERY_ICONS["failed"]
_PENDING = icon("clock")
_NOTE_LABEL = f'<span class="note-label" data-testid="note-label">{_LOCK}Internal note</span>'
_NOTE_FOOT = f'<span class="message-channel">{_LOCK}Staff only · never sent to the patient</span>'
_SECURE_MARKER = f'<span class="secure-marker">{_LOCK}Secure</span>'
_OOB = ' hx-swap-oob="true"'


@functools.cache
def _attachment_url_pattern(prefix: str, urlconf) -> str:
    a, b = 9_876_543_210, 9_876_543_211
    url = reverse("careportal:attachment_download", args=[a, b], urlconf=urlconf)
    return url.replace(str(a), "{0}").replace(str(b), "{1}")


def _attachment_url(communication_id: int, attachment_id: int) -> str:
    return _attachment_url_pattern(get_script_prefix(), get_urlconf()).format(
        int(communication_id), int(attachment_id)
    )


def _clock(local) -> str:
    """``g:i A``: 3:05 PM."""
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def _text_html(text: str) -> str:
    """Django's ``linebreaksbr`` on plain text: newlines normalised, escaped, then ``<br>``."""
    return _esc(text.replace("\r\n", "\n").replace("\r", "\n")).replace("\n", "<br>")


def _body(m) -> str:
    if m.is_internal_note and m.body_html:
        from .notifications import note_html

        return f'<div class="message-text note-text">{note_html(m.body_html)}</div>'
    if m.body_html:
        from inbox.sanitize import clean_html

        return (
            f'<div class="message-html">{clean_html(m.body_html)}</div>'  # nh3 output, again at render time
        )
    return f'<div class="message-text">{_text_html(m.body_text or "")}</div>'


def _attachments(m, communication_id: int) -> str:
    attachments = m.attachments.all()
    if not attachments:
        return ""
    items = "".join(
        f'<li><a class="attachment" href="{_attachment_url(communication_id, a.pk)}" download>{_PAPERCLIP}'
        f'<span class="attachment-name">{_esc(a.filename)}</span>'
        f'<span class="attachment-size">{filesizeformat(a.size)}</span></a></li>'
        for a in attachments
    )
    return f'<ul class="attachments" aria-label="Attachments">{items}</ul>'


def _foot(m, c, outbound: bool) -> str:
    if m.is_internal_note:
        foot = _NOTE_FOOT
    else:
        label = "Secure message" if m.is_secure else _esc(c.get_channel_display())
        foot = f'<span class="message-channel">{icon(CHANNEL_ICONS.get(c.channel, "inbox"))}{label}</span>'
        if m.is_secure:
            foot += _SECURE_MARKER
        if outbound:
            status = m.delivery_status
            title = f' title="{_esc(m.delivery_error)}"' if m.delivery_error else ""
            foot += (
                f'<span class="delivery delivery-{_esc(status)}"{title}>'
                f"{_DELIVERY_ICONS.get(status, _PENDING)}{_esc(m.get_delivery_status_display())}</span>"
            )
    if m.is_auto_reply:
        foot += '<span class="muted">Auto-reply</span>'
    return foot


def message_html(m, c, oob: bool = False) -> SafeString:
    """One message of communication ``c`` as an ``<article>``. Every value from the database goes through
    ``_esc`` once (or nh3 for HTML bodies); the markup around it is literal."""
    outbound = m.direction == "out"
    if m.is_internal_note:
        kind, label = " is-note", "Internal note"
    else:
        kind, label = "", "Sent message" if outbound else "Received message"
    if outbound:
        author = m.author.full_name if m.author_id else "Care team"
    else:
        author = m.sender_name or m.sender_address or c.counterpart
    local = timezone.localtime(m.created_at)
    subject = (
        f'<p class="message-subject">{_esc(m.subject)}</p>'
        if m.subject and c.is_email and m.subject != c.subject
        else ""
    )
    return mark_safe(  # noqa: S308 — every value above is escaped, sanitised by nh3, or a number
        f'<article class="message {"is-outbound" if outbound else "is-inbound"}{kind}" id="message-{int(m.pk)}"'
        f'{_OOB if oob else ""} aria-label="{label}">'
        f'<header class="message-head"><span class="message-author">{_esc(author)}</span>'
        f"{_NOTE_LABEL if m.is_internal_note else ''}"
        f'<time class="message-time" datetime="{local.isoformat()}" title="{_esc(full_time(local))}">{_clock(local)}</time>'
        f'</header><div class="message-bubble">{subject}{_body(m)}{_attachments(m, c.pk)}</div>'
        f'<footer class="message-foot">{_foot(m, c, outbound)}</footer></article>'
    )


def _day(m):
    return timezone.localtime(m.created_at).date()


def day_divider_html(m) -> str:
    local = timezone.localtime(m.created_at)
    return (
        f'<div class="day-divider" role="separator" data-day="{local:%Y%m%d}">'
        f"<span>{local:%A, %B} {local.day}, {local.year}</span></div>"
    )


@register.simple_tag
def message(m, c, oob=False) -> SafeString:
    return message_html(m, c, oob=bool(oob))


@register.simple_tag
def day_divider(m) -> SafeString:
    return mark_safe(day_divider_html(m))  # noqa: S308 — made from a datetime only


@register.simple_tag
def message_list(conversation, c, new_days=None) -> SafeString:
    """Messages oldest first, a day divider before the first message of each local day. ``new_days`` (pairs of
    message and "starts a new day", for a push appended to a conversation already on screen) decides the dividers
    instead of the days seen here."""
    parts = []
    previous = None
    if new_days is not None:
        for m, new_day in new_days:
            if new_day:
                parts.append(day_divider_html(m))
            parts.append(message_html(m, c))
    else:
        for m in conversation:
            day = _day(m)
            if day != previous:
                parts.append(day_divider_html(m))
                previous = day
            parts.append(message_html(m, c))
    return mark_safe("".join(parts))  # noqa: S308 — each part is built escaped above
