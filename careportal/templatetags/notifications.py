"""The notification bell in the shell, internal notes with their @mentions, and short relative times."""

import nh3
from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe

from designer.selectors import role_access

register = template.Library()

KIND_ICONS = {"assigned": "user-plus", "inbound": "inbox", "mention": "at-sign"}


@register.inclusion_tag("careportal/notifications/_bell.html", takes_context=True)
def notification_bell(context):
    """The bell for a signed-in user whose role has the Inbox (its count and list load in their own request);
    nothing otherwise."""
    user = context.get("user")
    return {"show": user is not None and user.is_authenticated and role_access(user).has_inbox}


@register.filter
def kind_icon(kind: str) -> str:
    return KIND_ICONS.get(kind, "bell")


@register.filter
def note_html(value: str) -> str:
    """A note's stored HTML (``inbox.notifications.note_html``) through an allow-list: paragraphs, line breaks and
    ``<span class="mention">`` only."""
    return mark_safe(  # noqa: S308 - sanitised by nh3 just above
        nh3.clean(
            value or "",
            tags={"p", "br", "span"},
            attributes={},
            allowed_classes={"span": {"mention"}},
        )
    )


@register.filter
def ago(value, now=None) -> str:
    """ "Just now", "5 min ago", "3 h ago", "2 d ago", then the date."""
    if not value:
        return ""
    seconds = max(0, ((now or timezone.now()) - value).total_seconds())
    if seconds < 60:
        return "Just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} d ago"
    return timezone.localtime(value).strftime("%b %-d")
