"""On PostgreSQL, a trigger refuses UPDATE and DELETE on the audit log, whatever the client."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION inbox_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'audit events are append-only: ' || TG_OP || ' refused', ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS inbox_auditevent_append_only ON inbox_auditevent;
CREATE TRIGGER inbox_auditevent_append_only BEFORE UPDATE OR DELETE ON inbox_auditevent
    FOR EACH ROW EXECUTE FUNCTION inbox_auditevent_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS inbox_auditevent_append_only ON inbox_auditevent;
DROP FUNCTION IF EXISTS inbox_auditevent_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("inbox", "0001_initial")]
    operations = [migrations.RunPython(create_trigger, drop_trigger)]
