"""The audit log viewer: filters (actor, patient id or MRN, action, date range), keyset pages newest first that stay
fast at millions of rows, and a streamed CSV export."""

import csv
import datetime as dt
import io

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from adminportal import services
from inbox.models import AuditEvent
from tests.factories import AuditEventFactory, PatientFactory

VIEWED, SENT = AuditEvent.Action.COMMUNICATION_VIEWED, AuditEvent.Action.MESSAGE_SENT
NOW = timezone.now().replace(microsecond=0)


def event(minutes_ago: float, **fields) -> AuditEvent:
    return AuditEventFactory(at=NOW - dt.timedelta(minutes=minutes_ago), **fields)


def shown_ids(response) -> list[int]:
    return [e.pk for e in response.context["page"].rows]


def test_it_lists_events_newest_first(client, administrator, nurse):
    old, new = event(10, actor=nurse), event(1, actor=nurse)
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit"), {"actor": nurse.pk})
    assert response.status_code == 200
    assert shown_ids(response) == [new.pk, old.pk]
    assert b"Viewed communication" in response.content


def test_it_filters_by_actor(client, administrator, nurse, lead):
    mine, _ = event(1, actor=nurse), event(2, actor=lead)
    client.force_login(administrator)
    assert shown_ids(client.get(reverse("adminportal:audit"), {"actor": nurse.pk})) == [mine.pk]


@pytest.mark.parametrize("by", ["mrn", "id"])
def test_it_filters_by_patient_id_or_mrn(client, administrator, nurse, by):
    maria = PatientFactory(mrn="MRN1234567")
    hers = event(1, actor=nurse, patient=maria, communication=None)
    event(2, actor=nurse)
    client.force_login(administrator)
    value = "mrn1234567" if by == "mrn" else str(maria.pk)
    assert shown_ids(client.get(reverse("adminportal:audit"), {"patient": value})) == [hers.pk]


def test_an_unknown_patient_is_a_clear_error(client, administrator):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit"), {"patient": "MRN0000000-nope"})
    assert response.status_code == 200
    assert "No patient has the ID or MRN “MRN0000000-nope”." in response.content.decode()
    assert response.context["page"] is None


def test_it_filters_by_action(client, administrator, nurse):
    sent = event(1, actor=nurse, action=SENT)
    event(2, actor=nurse, action=VIEWED)
    client.force_login(administrator)
    assert shown_ids(client.get(reverse("adminportal:audit"), {"action": SENT})) == [sent.pk]


def test_it_filters_by_date_range_in_the_viewers_time_zone(client, administrator, nurse):
    administrator.time_zone = "America/New_York"
    administrator.save()
    zone = services.viewer_zone(administrator)
    inside = AuditEventFactory(actor=nurse, at=dt.datetime(2025, 3, 10, 23, 30, tzinfo=zone))
    AuditEventFactory(actor=nurse, at=dt.datetime(2025, 3, 11, 0, 30, tzinfo=zone))
    AuditEventFactory(actor=nurse, at=dt.datetime(2025, 3, 8, 23, 59, tzinfo=zone))
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit"), {"date_from": "2025-03-09", "date_to": "2025-03-10"})
    assert shown_ids(response) == [inside.pk]


def test_a_reversed_date_range_is_refused(client, administrator):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit"), {"date_from": "2025-03-10", "date_to": "2025-03-01"})
    assert response.status_code == 200
    assert b"The end date is before the start date." in response.content


def test_pages_walk_older_and_back_newer_without_gaps_or_repeats(client, administrator, nurse):
    # Five events share one timestamp: the id breaks the tie.
    same = [event(5, actor=nurse) for _ in range(5)]
    others = [event(m, actor=nurse) for m in (1, 2, 3, 7, 8)]
    expected = [e.pk for e in sorted(same + others, key=lambda e: (e.at, e.pk), reverse=True)]
    filters = services.AuditFilters(actor=nurse)

    pages, page = [], services.audit_page(filters, limit=3)
    while True:
        pages.append([e.pk for e in page.rows])
        if not page.older:
            break
        page = services.audit_page(filters, after=page.older, limit=3)
    back = services.audit_page(filters, before=page.newer, limit=3)

    assert [pk for p in pages for pk in p] == expected
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [e.pk for e in back.rows] == pages[-2]
    client.force_login(administrator)
    assert shown_ids(client.get(reverse("adminportal:audit"), {"actor": nurse.pk})) == expected


def test_the_page_links_carry_the_filters(client, administrator, nurse):
    for minutes in range(60):
        event(minutes, actor=nurse)
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit"), {"actor": nurse.pk})
    older = response.context["page"].older
    assert f'href="?actor={nurse.pk}&amp;after={older}"'.encode() in response.content
    second = client.get(reverse("adminportal:audit"), {"actor": nurse.pk, "after": older})
    assert len(shown_ids(second)) == 10
    assert second.context["page"].newer is not None


def test_a_malformed_page_cursor_is_a_clear_error(client, administrator):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit"), {"after": "yesterday"})
    assert response.status_code == 400
    assert b"malformed" in response.content


def test_the_keyset_condition_starts_the_scan_at_the_cursor(administrator, nurse):
    """``at <= cursor`` (an index condition) rather than an OR that scans from the newest row."""
    e = event(1, actor=nurse)
    qs = services._older_than(services.audit_events(services.AuditFilters()), e.at, e.pk)
    sql = str(qs.query).lower()
    assert '"at" <=' in sql and " or " not in sql.split("where", 1)[1].split("order by")[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="query plans are PostgreSQL's")
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "audit_recent_idx"),
        ({"actor": True}, "audit_actor_idx"),
        ({"patient": True}, "audit_patient_idx"),
    ],
)
def test_audit_pages_are_served_by_the_audit_indexes(administrator, nurse, patient, filters, index):
    e = event(1, actor=nurse, patient=patient, communication=None)
    audit_filters = services.AuditFilters(
        actor=nurse if filters.get("actor") else None, patient=patient if filters.get("patient") else None
    )
    qs = services._older_than(services.audit_events(audit_filters), e.at, e.pk)[:51]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = qs.explain()
    assert index in plan


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_export_streams_the_filtered_log(client, administrator, nurse, lead, monkeypatch):
    monkeypatch.setattr(services, "CSV_BATCH", 2)  # several batches
    maria = PatientFactory(mrn="MRN5550001")
    mine = [event(m, actor=nurse, patient=maria, communication=None) for m in (1, 2, 3, 4, 5)]
    event(1, actor=lead)
    client.force_login(administrator)

    response = client.get(reverse("adminportal:audit_export"), {"actor": nurse.pk})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    rows = csv_rows(response)
    assert rows[0] == list(services.CSV_HEADER)
    assert [int(r[1]) for r in rows[1:]] == [nurse.pk] * 5
    assert [r[7] for r in rows[1:]] == ["MRN5550001"] * 5
    assert rows[1][0] == mine[0].at.astimezone(dt.UTC).isoformat()


def test_csv_cells_cannot_become_spreadsheet_formulas(client, administrator):
    AuditEventFactory(actor=None, actor_label='=HYPERLINK("http://evil")', communication=None)
    client.force_login(administrator)
    rows = csv_rows(client.get(reverse("adminportal:audit_export"), {"action": VIEWED}))
    assert rows[1][2] == '\'=HYPERLINK("http://evil")'


def test_csv_export_with_bad_filters_is_refused(client, administrator):
    client.force_login(administrator)
    response = client.get(reverse("adminportal:audit_export"), {"date_from": "not-a-date"})
    assert response.status_code == 400
    assert b"nothing was exported" in response.content


def test_csv_export_streams_asynchronously_under_asgi(administrator, nurse):
    event(1, actor=nurse)
    client = AsyncClient()

    async def export():
        await client.aforce_login(administrator)
        response = await client.get(reverse("adminportal:audit_export"))
        assert response.is_async
        return b"".join([chunk async for chunk in response.streaming_content])

    body = async_to_sync(export)().decode()
    assert body.splitlines()[0].startswith("at_utc,actor_id")
    assert "Viewed communication" in body
