# The search's stored vector (servicedesk/kb/search.py): on PostgreSQL a trigger keeps it equal to
# to_tsvector('english', search_text) on every write, whatever writes the row, and a GIN index serves
# the search; the expression index it replaces parsed every matching article again to rank it.

import django.contrib.postgres.search
from django.db import migrations

FORWARD = [
    "DROP INDEX IF EXISTS kb_article_search",
    "UPDATE kb_article SET search_vector = to_tsvector('english', search_text)",
    "CREATE INDEX kb_article_search ON kb_article USING gin (search_vector)",
    "CREATE TRIGGER kb_article_search_vector BEFORE INSERT OR UPDATE OF search_text ON kb_article "
    "FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger(search_vector, 'pg_catalog.english', search_text)",
]
BACKWARD = [
    "DROP TRIGGER IF EXISTS kb_article_search_vector ON kb_article",
    "DROP INDEX IF EXISTS kb_article_search",
    "CREATE INDEX kb_article_search ON kb_article USING gin (to_tsvector('english', search_text))",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("kb", "0003_self_service")]

    operations = [
        migrations.AddField(
            model_name="article",
            name="search_vector",
            field=django.contrib.postgres.search.SearchVectorField(editable=False, null=True),
        ),
        migrations.RunPython(forward, backward),
    ]
