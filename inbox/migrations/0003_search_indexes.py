"""PostgreSQL search: full-text (GIN) over message text and trigram (pg_trgm, GIN) indexes for the name, address
and number searches that ``icontains`` runs as ``UPPER(col) LIKE UPPER('%term%')``. SQLite keeps the plain path."""

from django.db import migrations

INDEXES = [
    ("inbox_message", "message_body_fts_idx", "USING gin (to_tsvector('simple', body_text))"),
    ("inbox_communication", "comm_counterpart_trgm_idx", "USING gin (upper(counterpart::text) gin_trgm_ops)"),
    ("inbox_communication", "comm_subject_trgm_idx", "USING gin (upper(subject::text) gin_trgm_ops)"),
    ("careportal_patient", "patient_first_trgm_idx", "USING gin (upper(first_name::text) gin_trgm_ops)"),
    ("careportal_patient", "patient_last_trgm_idx", "USING gin (upper(last_name::text) gin_trgm_ops)"),
    (
        "careportal_patient",
        "patient_preferred_trgm_idx",
        "USING gin (upper(preferred_name::text) gin_trgm_ops)",
    ),
    ("careportal_contact", "contact_first_trgm_idx", "USING gin (upper(first_name::text) gin_trgm_ops)"),
    ("careportal_contact", "contact_last_trgm_idx", "USING gin (upper(last_name::text) gin_trgm_ops)"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for table, name, definition in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("inbox", "0002_audit_append_only"), ("careportal", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
