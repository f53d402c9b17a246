"""A GIN index for the know-how search on PostgreSQL (portal/learnings.py); nothing on other databases.

The indexed expression is the one `SearchVector("title", "learnings", config="english")` compiles to, so
PostgreSQL can answer the page's full-text filter from the index. It is not declared on the model:
Django's GinIndex would be created on SQLite too, which has no GIN.
"""

from django.db import migrations

INDEX = "portal_task_learnings_search"
EXPRESSION = "to_tsvector('english'::regconfig, COALESCE(title, '') || ' ' || COALESCE(learnings, ''))"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON portal_task USING gin ({EXPRESSION})")


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_alter_member_cluster_account_and_more")]

    operations = [migrations.RunPython(create_index, drop_index)]
