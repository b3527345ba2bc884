"""The conversation library: tags (bookmarks), share links, presets shared to roles and the
full-text search index.

The search index lives outside the ORM because each database has its own:
- PostgreSQL: a stored, generated `tsvector` column on chat_message ('simple' configuration: one
  language-neutral lexer for the UI's nine languages rather than English stemming for one of them)
  in a GIN index together with user_id (btree_gin), so one user's matches come out of the index
  without visiting other users' rows; and a trigram GIN index (pg_trgm) on the text for Chinese
  and Japanese, which have no spaces for a word-based parser to split on.
- SQLite: an FTS5 table over chat_message's rowid kept in step by triggers.
"""

from __future__ import annotations

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

POSTGRES_UP = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "ALTER TABLE chat_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, coalesce(text, ''))) STORED",
    "CREATE INDEX msg_search ON chat_message USING gin (user_id, search_vector)",
    "CREATE INDEX msg_search_trgm ON chat_message USING gin (text gin_trgm_ops)",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS msg_search_trgm",
    "DROP INDEX IF EXISTS msg_search",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_vector",
]
SQLITE_UP = [
    "CREATE VIRTUAL TABLE chat_message_fts USING fts5("
    "text, content='chat_message', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chat_message_fts_ai AFTER INSERT ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(rowid, text) VALUES (new.rowid, new.text); END",
    "CREATE TRIGGER chat_message_fts_ad AFTER DELETE ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, text) VALUES ('delete', old.rowid, old.text); END",
    "CREATE TRIGGER chat_message_fts_au AFTER UPDATE OF text ON chat_message BEGIN "
    "INSERT INTO chat_message_fts(chat_message_fts, rowid, text) VALUES ('delete', old.rowid, old.text); "
    "INSERT INTO chat_message_fts(rowid, text) VALUES (new.rowid, new.text); END",
    "INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS chat_message_fts_au",
    "DROP TRIGGER IF EXISTS chat_message_fts_ad",
    "DROP TRIGGER IF EXISTS chat_message_fts_ai",
    "DROP TABLE IF EXISTS chat_message_fts",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_message_in_flight"),
        ("accounts", "0005_staff_role_follows_groups"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("conversations", models.ManyToManyField(blank=True, related_name="tags", to="chat.conversation")),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE, related_name="tags", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddConstraint(
            model_name="tag",
            constraint=models.UniqueConstraint(fields=("user", "name"), name="tag_unique_per_user"),
        ),
        migrations.CreateModel(
            name="ShareLink",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("token", models.CharField(editable=False, max_length=64, unique=True)),
                ("title", models.CharField(max_length=300)),
                ("snapshot", models.JSONField(default=list, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "conversation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="share_links", to="chat.conversation"
                    ),
                ),
                (
                    "up_to",
                    models.ForeignKey(
                        null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="chat.message"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="share_links",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [models.Index(fields=["user", "-created_at"], name="share_user_recent")],
            },
        ),
        migrations.AddField(
            model_name="preset",
            name="shared_roles",
            field=models.ManyToManyField(
                blank=True, help_text="Visible to the users of these roles.", related_name="+", to="accounts.role"
            ),
        ),
        migrations.AlterField(
            model_name="preset",
            name="shared",
            field=models.BooleanField(default=False, help_text="Visible to every user, who may apply it."),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
