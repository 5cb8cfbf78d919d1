"""The list-row helpers that replace ``{% url %}`` and two ``|date`` filters per row must render exactly what those
did."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from careportal.templatetags.portal import id_url, list_time


def test_id_url_matches_reverse():
    for name in ("careportal:communication", "careportal:communication_row"):
        assert id_url(name, 42) == reverse(name, args=[42])
        assert id_url(name, "7") == reverse(name, args=[7])


def test_list_time_matches_the_date_filters_in_the_active_time_zone():
    value = datetime(2026, 3, 4, 17, 5, 9, 120000, tzinfo=UTC)
    now = value + timedelta(days=30)
    with timezone.override(ZoneInfo("America/Chicago")):
        expected = Template(
            '<time class="row-time" datetime="{{ v|date:\'c\' }}" title="{{ v|date:\'D, M j, Y, g:i A T\' }}">'
        ).render(Context({"v": value}))
        html = list_time(value, now)
    assert html.startswith(expected)
    assert "Wed, Mar 4, 2026, 11:05 AM CST" in html
    assert html.endswith(">Mar 4</time>")


def test_list_time_of_nothing_is_empty():
    assert list_time(None) == ""
