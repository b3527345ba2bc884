from django.db import migrations


def create_builtin_roles(apps, schema_editor):
    from accounts.models import PERMISSIONS

    Role = apps.get_model("accounts", "Role")
    user_perms = {field: default for field, _label, default in PERMISSIONS}
    Role.objects.get_or_create(
        name="USER",
        defaults={"label": "User", "is_default": True, "description": "Every employee.", **user_perms},
    )
    Role.objects.get_or_create(
        name="ADMIN",
        defaults={
            "label": "Administrator",
            "priority": 100,
            "description": "Runs the portal.",
            **{field: True for field in user_perms},
        },
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_initial")]
    operations = [migrations.RunPython(create_builtin_roles, migrations.RunPython.noop)]
