"""The audit log: who changed what through the admin, before and after, read-only for admins."""
from __future__ import annotations

from decimal import Decimal

from auditlog.models import LogEntry
from django.urls import reverse

from accounts.models import Role
from endpoints.models import Endpoint

SECRET = "sk-live-AUDITSECRET-0123456789abcd"


def _form_values(form) -> dict:
    data: dict = {}
    for name in form.fields:
        bound = form[name]
        value = bound.value()
        if value is None or value is False:
            continue
        if value is True:
            data[bound.html_name] = "on"
        elif isinstance(value, (list, tuple)):
            data[bound.html_name] = [str(v) for v in value]
        else:
            data[bound.html_name] = str(value)
    return data


def submitted(response, **changes) -> dict:
    """The admin change form's current values as a browser would post them, with `changes`."""
    data = _form_values(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for key, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{key}"] = value
        data[f"{formset.prefix}-TOTAL_FORMS"] = len(formset.initial_forms)  # drop the blank extra rows
        for form in formset.initial_forms:
            data.update(_form_values(form))
    data.update(changes)
    return data


def change_in_admin(admin_client, obj, **changes):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    response = admin_client.post(url, submitted(admin_client.get(url), **changes))
    assert response.status_code == 302, [
        response.context["adminform"].form.errors,
        [f.formset.errors for f in response.context["inline_admin_formsets"]],
        [f.formset.non_form_errors() for f in response.context["inline_admin_formsets"]],
    ]
    return response


def test_an_admin_change_is_logged_with_who_and_before_after(admin_client, admin_user, db):
    role = Role.objects.create(name="SALES", start_balance=Decimal(1000))

    change_in_admin(admin_client, role, start_balance="2500", label="Sales team")

    entry = LogEntry.objects.get_for_object(role).get(action=LogEntry.Action.UPDATE)
    assert entry.actor == admin_user
    assert entry.changes_dict == {"start_balance": ["1000.000000", "2500"], "label": ["", "Sales team"]}


def test_secrets_are_masked_in_the_audit_log(admin_client, make_endpoint):
    endpoint = make_endpoint("Vendor", api_key=SECRET)

    change_in_admin(admin_client, endpoint, api_key="sk-live-NEWSECRET-9876543210zyxw")

    entry = LogEntry.objects.get_for_object(Endpoint.objects.get(pk=endpoint.pk)).get(action=LogEntry.Action.UPDATE)
    text = str(entry.changes)
    assert "AUDITSECRET" not in text and "NEWSECRET" not in text
    assert entry.changes_dict == {"api_key": ["••••••••abcd", "••••••••zyxw"]}


def test_changes_outside_the_admin_are_not_logged(db, make_user):
    role = Role.objects.create(name="QUIET")
    role.start_balance = Decimal(5)
    role.save()
    make_user("someone")

    assert not LogEntry.objects.exists()


def test_the_audit_log_is_viewable_and_filterable_but_never_editable(admin_client, admin_user, db):
    role = Role.objects.create(name="OPS")
    change_in_admin(admin_client, role, label="Operations")
    entry = LogEntry.objects.get(action=LogEntry.Action.UPDATE)

    listing = admin_client.get(reverse("admin:auditlog_logentry_changelist"), {"actor__id__exact": admin_user.pk})
    detail = admin_client.get(reverse("admin:auditlog_logentry_change", args=[entry.pk]))
    edit = admin_client.post(reverse("admin:auditlog_logentry_change", args=[entry.pk]), {"changes": "{}"})
    delete = admin_client.post(reverse("admin:auditlog_logentry_delete", args=[entry.pk]), {"post": "yes"})

    assert listing.status_code == 200 and "Operations" in listing.content.decode()
    assert detail.status_code == 200
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert LogEntry.objects.filter(pk=entry.pk, changes=entry.changes).exists()
