"""The audit log refuses to be wiped or rewritten on both databases.

PostgreSQL: a statement-level trigger refuses TRUNCATE (row triggers never see it), whoever runs it, the owner
included. SQLite: triggers refuse UPDATE and DELETE of audit rows, as 0002's row trigger does on PostgreSQL.
``inbox.audit_integrity`` re-creates the SQLite triggers after every migrate, since a table rebuild drops them.
"""

from django.db import migrations

POSTGRESQL_CREATE = """
CREATE OR REPLACE FUNCTION inbox_auditevent_refuse_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'audit events are append-only: TRUNCATE refused', ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS inbox_auditevent_refuse_truncate ON inbox_auditevent;
CREATE TRIGGER inbox_auditevent_refuse_truncate BEFORE TRUNCATE ON inbox_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_auditevent_refuse_truncate();
"""
POSTGRESQL_DROP = """
DROP TRIGGER IF EXISTS inbox_auditevent_refuse_truncate ON inbox_auditevent;
DROP FUNCTION IF EXISTS inbox_auditevent_refuse_truncate();
"""
SQLITE_TRIGGERS = {"inbox_auditevent_no_update": "UPDATE", "inbox_auditevent_no_delete": "DELETE"}


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_CREATE)
    elif vendor == "sqlite":
        for name, operation in SQLITE_TRIGGERS.items():
            schema_editor.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {operation} ON inbox_auditevent "
                f"BEGIN SELECT RAISE(ABORT, 'audit events are append-only: {operation} refused'); END"
            )


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL_DROP)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("inbox", "0012_rawinbound_lossless")]
    operations = [migrations.RunPython(create, drop)]
