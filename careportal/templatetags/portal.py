"""Small presentation helpers for Care Portal templates."""

import datetime
import functools
import html

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


def _esc(value) -> str:
    return html.escape(str(value))


# Feather-style 24×24 stroke icons, drawn with currentColor.
ICONS = {
    "home": '<path d="M3 10.5 12 3l9 7.5"/><path d="M5 9.5V21h14V9.5"/><path d="M10 21v-6h4v6"/>',
    "inbox": '<path d="M22 12h-6l-2 3h-4l-2-3H2"/><path d="M5.45 5.11 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z"/>',
    "users": '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/><path d="M23 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/>',
    "shield": '<path d="M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z"/>',
    "log-out": '<path d="M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4"/><path d="m16 17 5-5-5-5"/><path d="M21 12H9"/>',
    "mail": '<rect x="2" y="4" width="20" height="16" rx="2"/><path d="m22 6-10 7L2 6"/>',
    "lock": '<rect x="3" y="11" width="18" height="11" rx="2"/><path d="M7 11V7a5 5 0 0 1 10 0v4"/>',
    "sms": '<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/>',
    "chat": '<path d="M21 11.5a8.38 8.38 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.38 8.38 0 0 1-3.8-.9L3 21l1.9-5.7a8.38 8.38 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.38 8.38 0 0 1 3.8-.9h.5a8.48 8.48 0 0 1 8 8v.5z"/>',
    "search": '<circle cx="11" cy="11" r="8"/><path d="m21 21-4.35-4.35"/>',
    "heart": '<path d="M20.84 4.61a5.5 5.5 0 0 0-7.78 0L12 5.67l-1.06-1.06a5.5 5.5 0 0 0-7.78 7.78L12 21.23l8.84-8.84a5.5 5.5 0 0 0 0-7.78z"/>',
    "calendar": '<rect x="3" y="4" width="18" height="18" rx="2"/><path d="M16 2v4M8 2v4M3 10h18"/>',
    "user": '<path d="M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2"/><circle cx="12" cy="7" r="4"/>',
    "settings": '<circle cx="12" cy="12" r="3"/><path d="M19.4 15a1.65 1.65 0 0 0 .33 1.82l.06.06a2 2 0 1 1-2.83 2.83l-.06-.06a1.65 1.65 0 0 0-1.82-.33 1.65 1.65 0 0 0-1 1.51V21a2 2 0 1 1-4 0v-.09A1.65 1.65 0 0 0 9 19.4a1.65 1.65 0 0 0-1.82.33l-.06.06a2 2 0 1 1-2.83-2.83l.06-.06A1.65 1.65 0 0 0 4.68 15a1.65 1.65 0 0 0-1.51-1H3a2 2 0 1 1 0-4h.09A1.65 1.65 0 0 0 4.6 9a1.65 1.65 0 0 0-.33-1.82l-.06-.06a2 2 0 1 1 2.83-2.83l.06.06A1.65 1.65 0 0 0 9 4.68a1.65 1.65 0 0 0 1-1.51V3a2 2 0 1 1 4 0v.09a1.65 1.65 0 0 0 1 1.51 1.65 1.65 0 0 0 1.82-.33l.06-.06a2 2 0 1 1 2.83 2.83l-.06.06A1.65 1.65 0 0 0 19.4 9a1.65 1.65 0 0 0 1.51 1H21a2 2 0 1 1 0 4h-.09a1.65 1.65 0 0 0-1.51 1z"/>',
    "phone": '<path d="M22 16.92v3a2 2 0 0 1-2.18 2 19.79 19.79 0 0 1-8.63-3.07 19.5 19.5 0 0 1-6-6 19.79 19.79 0 0 1-3.07-8.67A2 2 0 0 1 4.11 2h3a2 2 0 0 1 2 1.72c.13.96.36 1.9.7 2.81a2 2 0 0 1-.45 2.11L8.09 9.91a16 16 0 0 0 6 6l1.27-1.27a2 2 0 0 1 2.11-.45c.91.34 1.85.57 2.81.7A2 2 0 0 1 22 16.92z"/>',
    "phone-off": '<path d="M10.68 13.31a16 16 0 0 0 3.41 2.6l1.27-1.27a2 2 0 0 1 2.11-.45c.91.34 1.85.57 2.81.7a2 2 0 0 1 1.72 2v3a2 2 0 0 1-2.18 2 19.79 19.79 0 0 1-8.63-3.07 19.42 19.42 0 0 1-3.33-2.67m-2.67-3.34a19.79 19.79 0 0 1-3.07-8.63A2 2 0 0 1 4.11 2h3a2 2 0 0 1 2 1.72c.13.96.36 1.9.7 2.81a2 2 0 0 1-.45 2.11L8.09 9.91"/><path d="M23 1 1 23"/>',
    "copy": '<rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>',
    "check": '<path d="M20 6 9 17l-5-5"/>',
    "clock": '<circle cx="12" cy="12" r="10"/><path d="M12 6v6l4 2"/>',
    "globe": '<circle cx="12" cy="12" r="10"/><path d="M2 12h20"/><path d="M12 2a15.3 15.3 0 0 1 4 10 15.3 15.3 0 0 1-4 10 15.3 15.3 0 0 1-4-10 15.3 15.3 0 0 1 4-10z"/>',
    "map-pin": '<path d="M21 10c0 7-9 13-9 13s-9-6-9-13a9 9 0 0 1 18 0z"/><circle cx="12" cy="10" r="3"/>',
    "file": '<path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z"/><path d="M14 2v6h6"/>',
    "edit": '<path d="M12 20h9"/><path d="M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4z"/>',
    "chevron-right": '<path d="m9 18 6-6-6-6"/>',
    "arrow-left": '<path d="M19 12H5"/><path d="m12 19-7-7 7-7"/>',
    "star": '<path d="m12 2 3.09 6.26L22 9.27l-5 4.87 1.18 6.88L12 17.77l-6.18 3.25L7 14.14 2 9.27l6.91-1.01z"/>',
    "video": '<path d="m23 7-7 5 7 5z"/><rect x="1" y="5" width="15" height="14" rx="2"/>',
}


# Inbox page icons (Feather-style, same drawing rules).
ICONS.update(
    {
        "paperclip": '<path d="m21.44 11.05-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48"/>',
        "smile": '<circle cx="12" cy="12" r="10"/><path d="M8 14s1.5 2 4 2 4-2 4-2"/><path d="M9 9h.01M15 9h.01"/>',
        "file-text": '<path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z"/><path d="M14 2v6h6"/><path d="M16 13H8M16 17H8M10 9H8"/>',
        "type": '<path d="M4 7V4h16v3"/><path d="M9 20h6"/><path d="M12 4v16"/>',
        "bold": '<path d="M6 4h8a4 4 0 0 1 0 8H6z"/><path d="M6 12h9a4 4 0 0 1 0 8H6z"/>',
        "italic": '<path d="M19 4h-9M14 20H5M15 4 9 20"/>',
        "list": '<path d="M8 6h13M8 12h13M8 18h13M3 6h.01M3 12h.01M3 18h.01"/>',
        "list-ordered": '<path d="M10 6h11M10 12h11M10 18h11"/><path d="M4 6h1v4"/><path d="M4 10h2"/><path d="M6 18H4c0-1 2-2 2-3s-1-1.5-2-1"/>',
        "link": '<path d="M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71"/><path d="M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71"/>',
        "send": '<path d="M22 2 11 13"/><path d="M22 2 15 22l-4-9-9-4z"/>',
        "chevron-down": '<path d="m6 9 6 6 6-6"/>',
        "chevron-up": '<path d="m18 15-6-6-6 6"/>',
        "user-plus": '<path d="M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="8.5" cy="7" r="4"/><path d="M20 8v6M23 11h-6"/>',
        "x": '<path d="M18 6 6 18M6 6l12 12"/>',
        "sidebar": '<rect x="3" y="3" width="18" height="18" rx="2"/><path d="M15 3v18"/>',
        "plus": '<path d="M12 5v14M5 12h14"/>',
        "edit-new": '<path d="M11 4H4a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2v-7"/><path d="M18.5 2.5a2.12 2.12 0 0 1 3 3L12 15l-4 1 1-4z"/>',
        "upload": '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4"/><path d="m17 8-5-5-5 5"/><path d="M12 3v12"/>',
        "download": '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4"/><path d="m7 10 5 5 5-5"/><path d="M12 15V3"/>',
        "alert": '<circle cx="12" cy="12" r="10"/><path d="M12 8v4M12 16h.01"/>',
        "help": '<circle cx="12" cy="12" r="10"/><path d="M9.09 9a3 3 0 0 1 5.83 1c0 2-3 3-3 3"/><path d="M12 17h.01"/>',
        "keyboard": '<rect x="2" y="4" width="20" height="16" rx="2"/><path d="M6 8h.01M10 8h.01M14 8h.01M18 8h.01M8 12h.01M12 12h.01M16 12h.01M7 16h10"/>',
        "check-circle": '<path d="M22 11.08V12a10 10 0 1 1-5.93-9.14"/><path d="M22 4 12 14.01l-3-3"/>',
        "circle": '<circle cx="12" cy="12" r="9"/>',
        "question": '<path d="M9.09 9a3 3 0 0 1 5.83 1c0 2-3 3-3 3"/><path d="M12 17h.01"/><circle cx="12" cy="12" r="10"/>',
        "filter": '<path d="M22 3H2l8 9.46V19l4 2v-8.54z"/>',
        "at-sign": '<circle cx="12" cy="12" r="4"/><path d="M16 8v5a3 3 0 0 0 6 0v-1a10 10 0 1 0-3.92 7.94"/>',
    }
)

# Designer and Admin Portal icons (Feather-style, same drawing rules).
ICONS.update(
    {
        "sliders": '<path d="M4 21v-7M4 10V3M12 21v-9M12 8V3M20 21v-5M20 12V3"/><path d="M1 14h6M9 8h6M17 16h6"/>',
        "layers": '<path d="m12 2 10 5-10 5L2 7z"/><path d="m2 17 10 5 10-5"/><path d="m2 12 10 5 10-5"/>',
        "rotate-ccw": '<path d="M1 4v6h6"/><path d="M3.51 15a9 9 0 1 0 2.13-9.36L1 10"/>',
        "trash": '<path d="M3 6h18"/><path d="M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6"/><path d="M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2"/>',
        "user-x": '<path d="M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="8.5" cy="7" r="4"/><path d="m18 8 5 5M23 8l-5 5"/>',
        "user-check": '<path d="M16 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="8.5" cy="7" r="4"/><path d="m17 11 2 2 4-4"/>',
        "activity": '<path d="M22 12h-4l-3 9L9 3l-3 9H2"/>',
        "refresh": '<path d="M23 4v6h-6"/><path d="M1 20v-6h6"/><path d="M3.51 9a9 9 0 0 1 14.85-3.36L23 10M1 14l4.64 4.36A9 9 0 0 0 20.49 15"/>',
        "toggle": '<rect x="1" y="5" width="22" height="14" rx="7"/><circle cx="16" cy="12" r="3"/>',
        "key": '<path d="M21 2l-2 2m-7.61 7.61a5.5 5.5 0 1 1-7.778 7.778 5.5 5.5 0 0 1 7.777-7.777zm0 0L15.5 7.5m0 0 3 3L22 7l-3-3m-3.5 3.5L19 4"/>',
        "eye": '<path d="M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8z"/><circle cx="12" cy="12" r="3"/>',
        "upload-cloud": '<path d="m16 16-4-4-4 4"/><path d="M12 12v9"/><path d="M20.39 18.39A5 5 0 0 0 18 9h-1.26A8 8 0 1 0 3 16.3"/>',
        "git-commit": '<circle cx="12" cy="12" r="4"/><path d="M1.05 12H7M17.01 12h5.95"/>',
        "bell": '<path d="M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.73 21a2 2 0 0 1-3.46 0"/>',
        "timer": '<circle cx="12" cy="13" r="8"/><path d="M12 9v4l2 2"/><path d="M9 2h6"/>',
    }
)

CHANNEL_ICONS = {"sms": "sms", "email": "mail", "secure_email": "lock", "chat": "chat"}


@register.simple_tag
def icon(name: str, label: str = "") -> str:
    paths = ICONS.get(name, ICONS["inbox"])
    if label:
        return format_html(
            '<svg class="icon" viewBox="0 0 24 24" role="img" aria-label="{}">{}</svg>',
            label,
            mark_safe(paths),  # noqa: S308
        )
    svg = f'<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">{paths}</svg>'
    return mark_safe(svg)  # noqa: S308 — paths come from ICONS, never from input


# --- Inbox page filters -------------------------------------------------------------------------------------


@register.filter
def channel_icon(channel: str) -> str:
    return CHANNEL_ICONS.get(channel, "inbox")


def _compact_duration(seconds: float) -> str:
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


@register.filter
def short_age(value, now=None) -> str:
    """A list time: "now", "12m", "3h", "Yesterday"/"Tue" within a week, then "Mar 4" (or "Mar 4, 2024")."""
    if not value:
        return ""
    now = now or timezone.now()
    seconds = (now - value).total_seconds()
    if seconds < 86400:
        return _compact_duration(max(seconds, 0))
    local, today = timezone.localtime(value), timezone.localtime(now)
    days = (today.date() - local.date()).days
    if days == 1:
        return "Yesterday"
    if days < 7:
        return local.strftime("%a")
    if local.year == today.year:
        return f"{local:%b} {local.day}"
    return f"{local:%b} {local.day}, {local.year}"


@register.filter
def open_for(communication, now=None) -> str:
    """How long an Open communication has waited ("2h", "3d"); empty when Closed."""
    if not communication.is_open:
        return ""
    since = communication.opened_at or communication.created_at
    return _compact_duration(max(((now or timezone.now()) - since).total_seconds(), 0))


@register.filter
def sanitize_html(value: str) -> str:
    """Message HTML cleaned again at render time (defence in depth: stored HTML is already sanitised)."""
    from inbox.sanitize import clean_html

    return mark_safe(clean_html(value))  # noqa: S308 — nh3 output


@register.filter
def folder_count(value) -> str:
    """A folder's count, "1,000+" above the selector's cap (``inbox.selectors.COUNT_CAP``)."""
    from django.contrib.humanize.templatetags.humanize import intcomma

    from inbox.selectors import COUNT_CAP

    if value is None:
        return ""
    return f"{intcomma(COUNT_CAP)}+" if value > COUNT_CAP else intcomma(value)


@register.simple_tag
def list_time(value, now=None) -> str:
    """A list row's ``<time>``: compact age, the full local date and time on hover (one local conversion per row)."""
    if not value:
        return ""
    local = timezone.localtime(value)
    # Every part is made from the datetime (no stored text), but escaped all the same: it is one call.
    return mark_safe(  # noqa: S308
        f'<time class="row-time" datetime="{local.isoformat()}" title="{_esc(full_time(local))}">'
        f"{short_age(value, now)}</time>"
    )


def full_time(local) -> str:
    """A local datetime in full for a hover title, "Mon, Mar 2, 2026, 9:05 AM EST", in one strftime (it runs for
    every row and every message)."""
    return local.strftime(f"%a, %b {local.day}, %Y, {local.hour % 12 or 12}:%M %p %Z")


@functools.cache
def _id_url_pattern(name: str, prefix: str, urlconf) -> str:
    marker = 9_876_543_210
    return reverse(name, args=[marker], urlconf=urlconf).replace(str(marker), "{}")


@register.simple_tag
def id_url(name: str, pk) -> str:
    """``{% url name pk %}`` for a URL whose only argument is an integer id, resolved once per URL name: a list of
    50 rows needs 100 of these, and ``reverse`` is the costliest part of rendering a row."""
    return _id_url_pattern(name, get_script_prefix(), get_urlconf()).format(int(pk))


def _plural(count: int, singular: str, plural: str) -> str:
    return singular if count == 1 else plural


@functools.cache
def _channel_icon_html(channel: str, label: str) -> str:
    return icon(channel_icon(channel), label)


_LINE_ICON = icon("phone")
_CLOSED_AGE = '<span class="row-age is-closed">Closed</span>'
_UNASSIGNED = (
    '<span class="avatar avatar-xs avatar-empty" title="Unassigned"><span class="visually-hidden">Unassigned'
    "</span></span>"
)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


def sort_key(c) -> str:
    """A row's place in a newest-first list as text that sorts like (last_message_at, id): the page puts a pushed
    row at its place by comparing keys (``static/js/realtime.js``)."""
    micros = (c.last_message_at - _EPOCH) // _MICROSECOND  # exact: integer arithmetic on the timedelta
    return f"{micros:017d}-{int(c.pk):012d}"


_PEN_ICON = icon("edit")


def _names(names) -> str:
    """ "Nora Nurse", "Nora Nurse and Cara Colleague", "Nora Nurse, Cara Colleague and Lena Lead"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def replying_marker(pk, names) -> str:
    """The row's "… is replying" marker (``careportal.presence``): part of every row render, and pushed alone
    (``careportal.live.replying_markers``) when who is replying changes — the page swaps it in by its id. Empty and
    hidden when nobody else is."""
    pk = int(pk)
    if not names:
        return f'<span id="replying-{pk}" class="row-replying" data-testid="row-replying" hidden></span>'
    verb = "is" if len(names) == 1 else "are"
    return (
        f'<span id="replying-{pk}" class="row-replying" data-testid="row-replying">{_PEN_ICON}'
        f'<span class="row-replying-text">{_esc(_names(names))} {verb} replying</span></span>'
    )


@register.simple_tag
def inbox_row(c, state, now=None, oob=False) -> str:
    """One Inbox list row (``careportal/inbox/_row.html``), built in Python: a list renders 50 of them on every
    folder page and push, and this is several times faster than the same markup as template nodes. Every value
    from the database goes through ``_esc`` (``html.escape``, what Django's ``escape`` uses) exactly once; the
    fixed markup around it is literal."""
    esc = _esc
    pk = int(c.pk)
    classes = "row" + ("" if c.is_open else " is-closed") + (" is-unrecognized" if c.is_unrecognized else "")
    selected = pk == state.open_id
    if selected:
        classes += " is-selected"
    open_url = esc(state.open_url(pk))
    if c.is_unrecognized:
        name = c.counterpart
    elif c.contact_id:
        name = c.contact.full_name
    else:
        name = c.patient.full_name
    you = '<span class="row-you">You:</span> ' if c.last_message_direction == "out" else ""
    context = ""
    if c.is_unrecognized:
        count = int(getattr(c, "candidate_count", 0))
        matches = f"{count} {_plural(count, 'match', 'matches')}" if count else "No match"
        context = (
            '<span class="tag tag-warning">Unrecognized</span>'
            f'<span class="row-candidates" title="The sender matches {count} '
            f'{_plural(count, "patient", "patients")}">{matches}</span>'
        )
    elif c.contact_id:
        context = f'<span class="row-for">for {esc(c.patient.full_name)}</span>'
    if c.sending_line_id:
        context += f'<span class="row-line">{_LINE_ICON}{esc(c.sending_line.display_name)}</span>'
    # An email is scanned by its subject (issue 14, item 9): its own stronger line above the preview. SMS and chat
    # have none and keep the preview alone.
    subject = f'<span class="row-subject">{esc(c.subject)}</span>' if c.subject and c.is_email else ""
    found_in = getattr(c, "found_in", ())  # "Search all inboxes" (``inbox.selectors.with_found_in``)
    if found_in:
        tags = "".join(f'<span class="tag tag-folder">{esc(folder.full_label)}</span>' for folder in found_in)
        context += f'<span class="row-folders" data-testid="row-folders">{tags}</span>'
    if c.is_open:
        waited = open_for(c, now)
        age = (
            f'<span class="row-age is-open" title="Open for {waited}"><span class="visually-hidden">Open for </span>'
            f"{waited}</span>"
        )
    else:
        age = _CLOSED_AGE
    if c.assignee_id:
        assignee_name = esc(c.assignee.full_name)
        assignee = (
            f'<span class="avatar avatar-xs" title="Assigned to {assignee_name}"><span aria-hidden="true">'
            f'{esc(c.assignee.initials)}</span><span class="visually-hidden">Assigned to {assignee_name}</span></span>'
        )
    else:
        assignee = _UNASSIGNED
    channel = esc(c.channel)
    swap = ' hx-swap-oob="true"' if oob else ""
    current = ' aria-current="true"' if selected else ""
    return mark_safe(  # noqa: S308 — every value above is escaped or a number; the rest is fixed markup
        f'<li id="row-{pk}" class="{classes}"{swap} data-row data-sort="{sort_key(c)}" '
        f'data-communication-id="{pk}" data-row-url="{id_url("careportal:communication_row", pk)}">'
        f'<a class="row-link" href="{open_url}" hx-get="{id_url("careportal:communication", pk)}" '
        f'hx-target="#conversation-pane" hx-swap="innerHTML" hx-push-url="{open_url}"'
        f"{current}>"
        f'<span class="row-channel channel-{channel}">{_channel_icon_html(c.channel, c.get_channel_display())}'
        "</span>"
        f'<span class="row-body"><span class="row-top"><span class="row-name">{esc(name)}</span>'
        f"{list_time(c.last_message_at, now)}</span>"
        f'{subject}<span class="row-snippet">{you}{esc(c.last_message_preview or "No messages yet")}</span>'
        f"{replying_marker(pk, getattr(c, 'replying_names', ()))}"
        f'<span class="row-bottom"><span class="row-context">{context}</span>{age}{assignee}</span>'
        "</span></a></li>"
    )


@register.filter
def open_url(state, pk) -> str:
    """The folder page URL (same folder and filters) that opens communication ``pk``."""
    return state.open_url(pk)


@register.filter
def more_url(state, cursor) -> str:
    """The URL of the next page of rows after ``cursor`` (same folder and filters)."""
    return state.more_url(cursor)
