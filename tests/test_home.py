"""The landing page at `/` (until the chat page replaces it): a signed-in employee sees who they
are, their role and balance, what they may use and their account settings; only staff are offered
the admin, and nobody who is not staff is sent there (issue 13, defect 5)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress

from accounts.services import api_key_create
from endpoints.models import ModelSpec

PASSWORD = "Correct-Horse-42-battery"


@pytest.fixture
def setup(builtin_roles, make_role, make_user, make_endpoint):
    allowed = make_endpoint("Acme", models=("acme-large", "acme-small"))
    hidden = make_endpoint("Secret Lab", models=("lab-model",))
    spec = ModelSpec.objects.create(name="helper", label="Friendly helper", endpoint=allowed, model="acme-large",
                                    description="For everyday questions.")
    ModelSpec.objects.create(name="lab", label="Lab spec", endpoint=hidden, model="lab-model")
    role = make_role("ENGINEERING", label="Engineering", balance_enabled=True, start_balance=Decimal(2_500_000),
                     can_use_api=True)
    role.allowed_endpoints.add(allowed)
    role.allowed_model_specs.add(spec)
    employee = make_user("emma", name="Emma Employee", role=role, password=PASSWORD, email="emma@corp.example")
    EmailAddress.objects.create(user=employee, email=employee.email, verified=True, primary=True)
    return {"employee": employee, "role": role}


def test_a_signed_in_employee_lands_on_a_page_of_their_own(client, setup):
    api_key_create(user=setup["employee"], name="laptop scripts")

    signed_in = client.post("/accounts/login/", {"login": "emma", "password": PASSWORD})
    page = client.get(signed_in["Location"])
    html = page.content.decode()

    assert signed_in["Location"] == "/"
    assert page.status_code == 200
    for shown in ("Emma Employee", "emma@corp.example", "Engineering", "2,500,000 credits",
                  "Friendly helper", "For everyday questions.", "Acme", "acme-large, acme-small", "laptop scripts"):
        assert shown in html, shown
    for hidden in ("Secret Lab", "Lab spec"):
        assert hidden not in html
    for settings_page in ("/accounts/email/", "/accounts/password/change/", "/accounts/2fa/", "/api/docs"):
        assert f'href="{settings_page}"' in html
    assert "/admin/" not in html


def test_the_page_shows_only_the_visitors_own_account(client, setup, make_user):
    other = make_user("oscar", name="Oscar Other", role=setup["role"])
    api_key_create(user=other, name="oscar's key")
    client.force_login(setup["employee"])

    html = client.get("/").content.decode()

    assert "Oscar Other" not in html and "oscar's key" not in html


def test_staff_also_get_a_link_to_the_admin(client, setup, make_user):
    staff = make_user("sam", is_staff=True, role=setup["role"])
    client.force_login(staff)

    html = client.get("/").content.decode()

    assert 'href="/admin/"' in html


def test_signed_out_visitors_are_sent_to_the_sign_in_page_not_the_admin(client, db):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
