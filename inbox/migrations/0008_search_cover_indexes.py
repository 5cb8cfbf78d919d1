"""PostgreSQL indexes for searched pages that PostgreSQL can answer from the index alone (no visit to the table):

- a linked communication by patient, newest first: a name search reads every communication of the patients it
  names (thousands for a common surname in a large organisation) with their time, then keeps the newest page;
- a communication by id with what a page sorts and filters by: message text resolved to communication ids is read
  this way;
- the communications a user sent in (the Sent folder), from their outbound messages that are not internal notes;
- the Unrecognized communications assigned to a user (My Inbox → Unrecognized), a handful among a large
  organisation's tens of thousands.

SQLite keeps its plain path."""

from django.db import migrations

INDEXES = [
    (
        "inbox_communication",
        "comm_linked_patient_recent_idx",
        "(patient_id, last_message_at DESC, id DESC) WHERE NOT is_unrecognized",
    ),
    (
        "inbox_communication",
        "comm_id_cover_idx",
        "(id) INCLUDE (last_message_at, is_unrecognized, status, channel, assignee_id, patient_id)",
    ),
    (
        "inbox_communication",
        "comm_unrecog_assignee_idx",
        "(assignee_id, last_message_at DESC, id DESC) WHERE is_unrecognized",
    ),
    (
        "inbox_message",
        "message_sent_by_idx",
        "(author_id, communication_id) WHERE direction = 'out' AND NOT is_internal_note",
    ),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, definition in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("inbox", "0007_message_body_tsv")]
    operations = [migrations.RunPython(create, drop)]
