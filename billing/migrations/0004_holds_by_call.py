"""Holds belong to a call and are released by it (was: counted on the balance and released oldest
first). Holds of the old kind cannot be told apart, so they are dropped: they only lowered what the
next balance check saw as available, and their calls are billed when they report back all the same."""
import uuid

from django.db import migrations, models


def drop_unowned_holds(apps, schema_editor):
    apps.get_model("billing", "Hold").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_append_only_guard")]

    operations = [
        migrations.RunPython(drop_unowned_holds, migrations.RunPython.noop),
        migrations.RemoveField(model_name="balance", name="released_holds"),
        migrations.AddField(
            model_name="balance",
            name="held",
            field=models.DecimalField(
                decimal_places=6, default=0, editable=False, max_digits=20,
                help_text="Credits set aside by this user's calls still running: the sum of their holds (see Hold).",
            ),
        ),
        migrations.AddField(
            model_name="hold",
            name="call",
            field=models.UUIDField(
                default=uuid.uuid4, unique=True, help_text="The call this hold belongs to (released by it alone)."
            ),
            preserve_default=False,  # (the table is empty here: the old holds were dropped)
        ),
    ]
