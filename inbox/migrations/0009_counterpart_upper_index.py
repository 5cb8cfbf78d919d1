"""PostgreSQL: a search for a whole email address (or number) finds its communications by equality on the upper-cased
counterpart (what ``counterpart__iexact`` asks), a B-tree lookup; the trigram index (0003) still serves partial
addresses, where intersecting the trigrams every address shares ("exa", "com", …) is the price. SQLite keeps its plain
path."""

from django.db import migrations

NAME = "comm_counterpart_upper_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {NAME} ON inbox_communication (upper(counterpart::text))")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")


class Migration(migrations.Migration):
    dependencies = [("inbox", "0008_search_cover_indexes")]
    operations = [migrations.RunPython(create, drop)]
