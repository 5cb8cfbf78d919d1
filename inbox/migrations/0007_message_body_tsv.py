"""PostgreSQL: the full-text vector of a message's text is stored (a generated column, kept by PostgreSQL on every
insert and update) and indexed, instead of an index on the expression. A search walking the Inbox newest first tests
each communication's messages against the query: reading a stored vector is far cheaper than computing
``to_tsvector`` of every message again, and so is the recheck of a large bitmap. Django does not model the column
(``inbox.selectors.message_text_matches`` reads it through SQL on PostgreSQL only); SQLite keeps the plain path."""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE inbox_message ADD COLUMN IF NOT EXISTS body_tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', body_text)) STORED"
    )
    schema_editor.execute("CREATE INDEX IF NOT EXISTS message_body_tsv_idx ON inbox_message USING gin (body_tsv)")
    schema_editor.execute("DROP INDEX IF EXISTS message_body_fts_idx")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS message_body_fts_idx ON inbox_message USING gin (to_tsvector('simple', body_text))"
    )
    schema_editor.execute("DROP INDEX IF EXISTS message_body_tsv_idx")
    schema_editor.execute("ALTER TABLE inbox_message DROP COLUMN IF EXISTS body_tsv")


class Migration(migrations.Migration):
    dependencies = [("inbox", "0006_sendingline_senders")]
    operations = [migrations.RunPython(create, drop)]
