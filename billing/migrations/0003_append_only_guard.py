"""The ledger is append-only in the database too (PostgreSQL): a trigger refuses DELETE and any
UPDATE except the foreign keys Django nulls when a conversation, message, endpoint, role or admin
is deleted (ON DELETE SET NULL). SQLite relies on the model-level guard only."""
from django.db import migrations
from django.db.models import OuterRef, Subquery

GUARD = """
CREATE OR REPLACE FUNCTION billing_transaction_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'billing_transaction is append-only: rows cannot be deleted';
    END IF;
    IF (NEW.id, NEW.user_id, NEW.token_type, NEW.tokens, NEW.rate, NEW.credits, NEW.context,
        NEW.estimated, NEW.reason, NEW.created_at, NEW.model, NEW.endpoint_name)
       IS DISTINCT FROM
       (OLD.id, OLD.user_id, OLD.token_type, OLD.tokens, OLD.rate, OLD.credits, OLD.context,
        OLD.estimated, OLD.reason, OLD.created_at, OLD.model, OLD.endpoint_name)
       OR (NEW.conversation_id IS NOT NULL AND NEW.conversation_id IS DISTINCT FROM OLD.conversation_id)
       OR (NEW.message_id IS NOT NULL AND NEW.message_id IS DISTINCT FROM OLD.message_id)
       OR (NEW.endpoint_id IS NOT NULL AND NEW.endpoint_id IS DISTINCT FROM OLD.endpoint_id)
       OR (NEW.role_id IS NOT NULL AND NEW.role_id IS DISTINCT FROM OLD.role_id)
       OR (NEW.created_by_id IS NOT NULL AND NEW.created_by_id IS DISTINCT FROM OLD.created_by_id)
    THEN
        RAISE EXCEPTION 'billing_transaction is append-only: record a new adjustment instead';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS billing_transaction_append_only ON billing_transaction;
CREATE TRIGGER billing_transaction_append_only
    BEFORE UPDATE OR DELETE ON billing_transaction
    FOR EACH ROW EXECUTE FUNCTION billing_transaction_append_only();
"""

UNGUARD = """
DROP TRIGGER IF EXISTS billing_transaction_append_only ON billing_transaction;
DROP FUNCTION IF EXISTS billing_transaction_append_only();
"""


def backfill_roles(apps, schema_editor):
    """Rows written before the role column existed get their user's current role."""
    Transaction = apps.get_model("billing", "Transaction")
    User = apps.get_model("accounts", "User")
    role = User.objects.filter(pk=OuterRef("user_id"))
    Transaction.objects.filter(role__isnull=True).update(role_id=Subquery(role.values("role_id")[:1]))


def install_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GUARD)


def remove_guard(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNGUARD)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_builtin_roles"),
        ("billing", "0002_role_and_holds"),
    ]

    operations = [
        migrations.RunPython(backfill_roles, migrations.RunPython.noop),
        migrations.RunPython(install_guard, remove_guard),
    ]
