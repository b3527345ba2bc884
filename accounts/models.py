"""Users and roles. A role says what its users may do, which endpoints/specs they may use, and how
their balance behaves; SSO/LDAP groups map to roles through RoleGroup."""
from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower


class DecimalShape(TypedDict):
    max_digits: int
    decimal_places: int


CREDITS: DecimalShape = {"max_digits": 20, "decimal_places": 6}


class IntervalUnit(models.TextChoices):
    SECONDS = "seconds", "seconds"
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"
    WEEKS = "weeks", "weeks"
    MONTHS = "months", "months"


class RoleQuerySet(models.QuerySet):
    def default(self) -> Role:
        """The role of users nobody assigned one to (USER unless an admin picked another)."""
        return self.filter(is_default=True).first() or self.get(name=Role.USER)

    def delete(self):
        # Bulk deletes (the admin's "delete selected") skip Role.delete(): guard them too.
        builtin = sorted(self.filter(name__in=Role.BUILTIN).values_list("name", flat=True))
        if builtin:
            raise ValidationError(f"The built-in role {' and '.join(builtin)} cannot be deleted.")
        return super().delete()


class Role(models.Model):
    USER = "USER"
    ADMIN = "ADMIN"
    BUILTIN = (USER, ADMIN)

    name = models.CharField(max_length=50, help_text="Key, e.g. USER, ADMIN, ENGINEERING.")
    label = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(
        "default role", default=False,
        help_text="Given to new users whose SSO/LDAP groups map to no role (only one role can be the default).",
    )
    priority = models.IntegerField(
        default=0, help_text="When a user's groups map to several roles, the highest priority wins."
    )
    requires_2fa = models.BooleanField("requires two-factor", default=False)
    allowed_endpoints = models.ManyToManyField(
        "endpoints.Endpoint", blank=True, related_name="roles",
        help_text="Endpoints this role may use. None selected: all enabled endpoints.",
    )
    allowed_model_specs = models.ManyToManyField(
        "endpoints.ModelSpec", blank=True, related_name="roles",
        help_text="Model specs this role may see. None selected: all enabled specs.",
    )
    # balance policy (LibreChat `balance`)
    balance_enabled = models.BooleanField(
        default=False, help_text="balance.enabled: requests need credits; usage is deducted."
    )
    start_balance = models.DecimalField(
        default=Decimal(20000), validators=[MinValueValidator(Decimal(0))],
        help_text="balance.startBalance: credits given at first login (1 USD = 1,000,000 credits).", **CREDITS
    )
    auto_refill_enabled = models.BooleanField(default=False, help_text="balance.autoRefillEnabled.")
    refill_interval_value = models.PositiveIntegerField(default=30, help_text="balance.refillIntervalValue.")
    refill_interval_unit = models.CharField(
        max_length=10, choices=IntervalUnit.choices, default=IntervalUnit.DAYS, help_text="balance.refillIntervalUnit."
    )
    refill_amount = models.DecimalField(
        default=Decimal(10000), validators=[MinValueValidator(Decimal(0))],
        help_text="balance.refillAmount: credits added per refill.", **CREDITS
    )
    # Rate limits of the REST API and the gateway, per user of the role, per minute (portal.ratelimit).
    requests_per_minute = models.PositiveIntegerField(
        "API requests per minute", default=0,
        help_text="Requests each user of this role may make to /api/ and /v1/ per minute; 0: no limit.",
    )
    tokens_per_minute = models.PositiveIntegerField(
        "API tokens per minute", default=0,
        help_text="Prompt + completion tokens each user of this role may spend per minute through /v1/ and "
        "chat turns over /api/ made with a personal API key; 0: no limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Permission flags: LibreChat's set (SPEC §1.4); the defaults are the USER role's.
    can_chat = models.BooleanField("use chat", default=True)
    can_choose_models = models.BooleanField("choose endpoints/models freely (off: model specs only)", default=True)
    can_use_prompts = models.BooleanField("prompts: use", default=True)
    can_create_prompts = models.BooleanField("prompts: create", default=True)
    can_share_prompts = models.BooleanField("prompts: share", default=False)
    can_use_bookmarks = models.BooleanField("bookmarks", default=True)
    can_use_presets = models.BooleanField("presets", default=True)
    can_multi_convo = models.BooleanField("multi-conversation", default=True)
    can_temporary_chat = models.BooleanField("temporary chat", default=True)
    can_share_conversations = models.BooleanField("share conversations", default=True)
    can_run_code = models.BooleanField("run code", default=False)
    can_web_search = models.BooleanField("web search", default=False)
    can_file_search = models.BooleanField("file search", default=False)
    can_use_memories = models.BooleanField("memories", default=True)
    can_use_agents = models.BooleanField("agents: use", default=True)
    can_create_agents = models.BooleanField("agents: create", default=False)
    can_share_agents = models.BooleanField("agents: share", default=False)
    can_use_mcp_servers = models.BooleanField("MCP servers", default=False)
    can_generate_images = models.BooleanField("image generation", default=False)
    can_use_api = models.BooleanField("API access (personal API keys, gateway)", default=False)

    objects = RoleQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"), name="role_name_unique_ci",
                violation_error_message="A role with this name already exists (names are case-insensitive).",
            ),
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_role",
                violation_error_message="Only one role can be the default role.",
            ),
        ]

    def __str__(self) -> str:
        return self.label or self.name

    @property
    def is_builtin(self) -> bool:
        return self.name in self.BUILTIN

    def clean(self) -> None:
        if self.auto_refill_enabled and self.refill_interval_value < 1:
            raise ValidationError({"refill_interval_value": "The refill interval must be at least 1."})
        self._refuse_builtin_rename()
        if self.is_default:
            clash = Role.objects.filter(is_default=True).exclude(pk=self.pk).first()
            if clash:
                raise ValidationError({"is_default": f"'{clash}' is already the default role."})

    def _refuse_builtin_rename(self) -> None:
        if self.pk:
            old = Role.objects.filter(pk=self.pk).values_list("name", flat=True).first()
            if old in self.BUILTIN and old != self.name:
                raise ValidationError({"name": f"The built-in role {old} cannot be renamed."})

    def save(self, *args, **kwargs):
        self._refuse_builtin_rename()  # also outside forms: User.save() looks ADMIN up by name
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.is_builtin:
            raise ValidationError(f"The built-in role {self.name} cannot be deleted.")
        return super().delete(*args, **kwargs)


# Every permission flag as (field, label, default for USER), in declaration order.
PERMISSIONS: list[tuple[str, str, bool]] = [
    (f.name, str(f.verbose_name), f.default) for f in Role._meta.local_fields
    if isinstance(f, models.BooleanField) and f.name.startswith("can_")
]
# The flags whose features exist today (chat, free endpoint/model choice, bookmarks, presets, temporary
# chats, share links, API keys): the role page shows these. The others keep their columns (and LibreChat's defaults) and
# appear on the page when their feature does.
IMPLEMENTED_PERMISSIONS: tuple[str, ...] = (
    "can_chat", "can_choose_models", "can_use_bookmarks", "can_use_presets", "can_temporary_chat",
    "can_share_conversations", "can_use_api",
)


class GroupSource(models.TextChoices):
    ANY = "any", "OIDC or LDAP"
    OIDC = "oidc", "OIDC only"
    LDAP = "ldap", "LDAP only"


class RoleGroup(models.Model):
    """An identity-provider group whose members get `role` (exact, case-insensitive name or DN)."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="groups")
    group_name = models.CharField(
        max_length=500, help_text="Group name as the IdP sends it (OIDC claim value or LDAP group CN/DN)."
    )
    source = models.CharField(max_length=10, choices=GroupSource.choices, default=GroupSource.ANY)

    class Meta:
        verbose_name = "SSO/LDAP group"
        constraints = [
            models.UniqueConstraint(
                Lower("group_name"), "source", name="group_maps_to_one_role",
                violation_error_message="This group is already mapped to a role (a group maps to one role).",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.group_name} → {self.role}"


class User(AbstractUser):
    name = models.CharField("display name", max_length=200, blank=True)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="users", null=True, blank=True)
    auth_provider = models.CharField(
        max_length=20, default="local", help_text="How the user signs in: local, openid, ldap."
    )
    openid_id = models.CharField("OpenID subject", max_length=255, blank=True, db_index=True)
    ldap_id = models.CharField("LDAP identifier", max_length=500, blank=True, db_index=True)
    terms_accepted = models.BooleanField(default=False)
    staff_role_follows_groups = models.BooleanField(
        "role follows SSO/LDAP groups (staff)", default=False,
        help_text="Staff accounts keep the role an admin gave them: SSO/LDAP group mapping never changes "
        "it unless this is ticked. Other accounts always get their role from their groups at each sign-in.",
    )

    def __str__(self) -> str:
        return self.name or self.get_full_name() or self.username

    def groups_may_set_role(self) -> bool:
        """Whether an SSO/LDAP sign-in's group mapping may set this account's role: always for a new or
        non-staff account, for an existing staff account only when an admin opted in."""
        return self.pk is None or not (self.is_staff or self.is_superuser) or self.staff_role_follows_groups

    def save(self, *args, **kwargs):
        if self.role_id is None:
            self.role = Role.objects.get(name=Role.ADMIN) if self.is_superuser else Role.objects.default()
        super().save(*args, **kwargs)


class SignInPolicy(models.Model):
    """Who may create an account and how SSO groups gate access (one row: `SignInPolicy.load()`)."""

    allow_signup = models.BooleanField(
        "local sign-up", default=False,
        help_text="Let people create a local account on the sign-in page (email verification is "
        "mandatory). Off: only admins, SSO and LDAP create users (invite-only).",
    )
    signup_email_domains = models.TextField(
        "sign-up email domains", blank=True,
        help_text="One domain per line (or comma-separated), e.g. example.com. Empty: any domain.",
    )
    require_mapped_group = models.BooleanField(
        "require a mapped group", default=False,
        help_text="Refuse SSO/LDAP users whose groups map to no role (off: they get the default role).",
    )

    class Meta:
        verbose_name = verbose_name_plural = "sign-in policy"

    def __str__(self) -> str:
        return "Sign-in policy"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("The sign-in policy cannot be deleted.")

    @classmethod
    def load(cls) -> SignInPolicy:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @property
    def domains(self) -> list[str]:
        raw = self.signup_email_domains.replace(",", "\n")
        return [d.strip().lower().lstrip("@") for d in raw.splitlines() if d.strip()]

    def allows_email(self, email: str) -> bool:
        domains = self.domains
        return not domains or email.rpartition("@")[2].lower() in domains


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> ApiKeyQuerySet:
        from django.utils import timezone

        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiKey(models.Model):
    """A personal API key. Only its sha256 is stored; the key itself is shown once, at creation.

    Keys are 256-bit random tokens, so a plain (unsalted) sha256 is enough to make a leaked
    database useless and lets a request find its key with one indexed lookup.
    """

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What the key is for, e.g. 'laptop scripts'.")
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        from django.utils import timezone

        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired and self.user.is_active

    def revoke(self) -> None:
        from django.utils import timezone

        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
