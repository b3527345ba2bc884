"""First-start set-up for `make run`: the site's name and domain, an admin account (login printed
once) and demo data."""
from __future__ import annotations

import secrets
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Role, RoleGroup, User
from endpoints import demo
from endpoints.models import AuthKind, Endpoint, EndpointModel, ModelSpec
from portal.models import PortalSettings

DEMO_ENDPOINT = "Atrium demo"
DEMO_SPEC = "demo"
DEMO_ROLE = "ENGINEERING"
MADE_UP_ADDRESS = "admin@example.com"


class Command(BaseCommand):
    help = "Create the admin account (printing its login once) and demo data. Safe to run on every start."

    def add_arguments(self, parser):
        parser.add_argument("--reset-admin-password", action="store_true", help="Print a new password for 'admin'.")
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo endpoint, model spec and role.")

    def handle(self, *args, reset_admin_password: bool = False, no_demo: bool = False, **options):
        PortalSettings.load()
        self._site()
        self._admin(reset_admin_password)
        if not no_demo:
            self._demo()
        self.stdout.write(f"Atrium admin: {settings.SITE_URL}/admin/")

    def _site(self) -> None:
        """Emails (verification, password reset) name the site: SITE_NAME at SITE_URL's host."""
        Site.objects.update_or_create(
            pk=settings.SITE_ID,
            defaults={"domain": urlsplit(settings.SITE_URL).netloc[:100], "name": settings.SITE_NAME[:50]},
        )

    def _admin(self, reset: bool) -> None:
        admin = User.objects.filter(username="admin").first()
        if admin is None and User.objects.filter(is_superuser=True).exists():
            return  # the company has its own administrators
        if admin is not None:
            self._forget_made_up_address(admin)
        password = secrets.token_urlsafe(12)
        if admin is None:
            # No email address: none would be real, and an unverified one would stop the sign-in page
            # and two-factor set-up at "verify your email". An admin adds a real one on the user page.
            admin = User.objects.create_superuser("admin", "", password, name="Administrator")
        elif reset:
            admin.set_password(password)
            admin.save(update_fields=["password"])
        else:
            return
        self.stdout.write(self.style.SUCCESS(
            f"Admin account — username: admin  password: {password}  (shown once; "
            "`python manage.py bootstrap --reset-admin-password` prints a new one)\n"
            f"Sign in at {settings.SITE_URL}/accounts/login/ and turn on two-factor authentication at "
            f"{settings.SITE_URL}/accounts/2fa/."
        ))

    @staticmethod
    def _forget_made_up_address(admin: User) -> None:
        """Earlier versions gave the admin admin@example.com, never verified: drop it."""
        from allauth.account.models import EmailAddress

        if admin.email == MADE_UP_ADDRESS:
            EmailAddress.objects.filter(user=admin, email__iexact=MADE_UP_ADDRESS, verified=False).delete()
            admin.email = ""
            admin.save(update_fields=["email"])

    @transaction.atomic
    def _demo(self) -> None:
        base_url = f"{settings.SITE_URL.rstrip('/')}/demo/v1"
        endpoint = Endpoint.objects.filter(catalogue_key=demo.CATALOGUE_KEY).first()
        if endpoint is not None:
            if endpoint.base_url.endswith("/demo/v1") and endpoint.base_url != base_url:
                # `make run PORT=…` or a new SITE_URL: the demo follows the server it runs on
                endpoint.base_url = base_url
                endpoint.save(update_fields=["base_url", "updated_at"])
                self.stdout.write(f"Demo endpoint “{endpoint.name}” now points at {base_url}.")
            return
        endpoint = Endpoint.objects.create(
            name=DEMO_ENDPOINT, base_url=base_url, auth_kind=AuthKind.NONE, catalogue_key=demo.CATALOGUE_KEY,
            model_display_label="Demo", ordering=1000,
        )
        EndpointModel.objects.create(
            endpoint=endpoint, name=demo.MODEL, label="Demo model (canned answers)",
            prompt_rate=Decimal("0.10"), completion_rate=Decimal("0.20"), context_tokens=8192,
        )
        spec = ModelSpec.objects.create(
            name=DEMO_SPEC, label="Demo assistant", group="Demo", endpoint=endpoint, model=demo.MODEL,
            description="Atrium's built-in demo model: it answers without any AI provider, to show the "
            "chat working. Add a real provider in the admin.",
            is_default=not ModelSpec.objects.filter(is_default=True).exists(),
        )
        role, _ = Role.objects.get_or_create(
            name=DEMO_ROLE,
            defaults=dict(
                label="Engineering", priority=10, balance_enabled=True, start_balance=Decimal(5_000_000),
                auto_refill_enabled=True, refill_interval_value=1, refill_interval_unit="months",
                refill_amount=Decimal(5_000_000), can_use_api=True,
            ),
        )
        role.allowed_endpoints.add(endpoint)
        role.allowed_model_specs.add(spec)
        RoleGroup.objects.get_or_create(role=role, group_name="engineering")
        self.stdout.write(
            f"Demo data: endpoint “{DEMO_ENDPOINT}” ({base_url}, Atrium's own demo model: it answers "
            f"without any provider), model spec “{spec.label}”{' (default)' if spec.is_default else ''}, "
            f"role {DEMO_ROLE} (SSO/LDAP group 'engineering', 5,000,000 credits = $5 start balance, monthly refill)."
        )
        self.stdout.write(
            "To chat with a real model: Admin → Endpoints → Add from provider catalogue, pick a provider "
            "and paste its API key (or a ${ENV_VAR} reference); then make a model spec of it the default."
        )
