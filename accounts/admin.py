from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Count

from accounts.models import IMPLEMENTED_PERMISSIONS, Role, RoleGroup, User
from accounts.services import email_verified_elsewhere, user_email_is_verified, user_set_email_verified


class RoleGroupInline(admin.TabularInline):
    model = RoleGroup
    extra = 1
    verbose_name = "SSO/LDAP group mapped to this role"
    verbose_name_plural = "SSO/LDAP groups mapped to this role"


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    inlines = [RoleGroupInline]
    list_display = [
        "name",
        "label",
        "is_default",
        "priority",
        "requires_2fa",
        "balance_enabled",
        "start_balance",
        "user_count",
    ]
    list_filter = ["is_default", "balance_enabled", "auto_refill_enabled", "requires_2fa"]
    search_fields = ["name", "label", "groups__group_name"]
    filter_horizontal = ["allowed_endpoints", "allowed_model_specs"]
    fieldsets = [
        (None, {"fields": ["name", "label", "description", "is_default", "priority"]}),
        (
            "Permissions",
            {
                "fields": [*IMPLEMENTED_PERMISSIONS, "requires_2fa"],
                "description": "Permissions of features Atrium does not have yet (prompts, agents, web search, "
                "…) appear here when those features arrive.",
            },
        ),
        (
            "Endpoints and model specs",
            {
                "fields": ["allowed_endpoints", "allowed_model_specs"],
                "description": "Leave a list empty to allow everything that is enabled.",
            },
        ),
        (
            "Balance policy",
            {
                "fields": [
                    "balance_enabled", "start_balance", "auto_refill_enabled", "refill_interval_value",
                    "refill_interval_unit", "refill_amount",
                ],
                "description": "Credits: 1 USD = 1,000,000 credits.",
            },
        ),
        (
            "Rate limits",
            {
                "fields": ["requests_per_minute", "tokens_per_minute"],
                "description": "Per user of the role, per minute, across every server; 0: no limit. "
                "A request over a limit gets 429 with Retry-After.",
            },
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_user_count=Count("users", distinct=True))

    @admin.display(description="users", ordering="_user_count")
    def user_count(self, obj: Role) -> int:
        return obj._user_count

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj is not None and obj.is_builtin else []

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_builtin:
            return False
        return super().has_delete_permission(request, obj)


EMAIL_VERIFIED_HELP = (
    "The address belongs to this person (you vouch for it): they sign in without a confirmation email, "
    "can reset their password by email, and a company SSO sign-in with this address may join this "
    "account (never a staff one). Unticked, their first sign-in sends a confirmation email to it. "
    "An account without an address signs in with the password you set."
)


class EmailVerifiedMixin(forms.Form):
    email_verified = forms.BooleanField(label="Address verified", required=False, help_text=EMAIL_VERIFIED_HELP)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["email_verified"].initial = user_email_is_verified(self.instance)

    def clean(self):
        cleaned = super().clean()
        email = cleaned.get("email") or ""
        if cleaned.get("email_verified"):
            if not email:
                self.add_error("email_verified", "There is no address to verify.")
            elif email_verified_elsewhere(email=email, user=self.instance):
                self.add_error("email_verified", "Another account has this address verified.")
        return cleaned


def _after_email(fields) -> list[str]:
    """The fields with "address verified" right after the address (Django's "Personal info")."""
    out: list[str] = []
    for field in fields:
        out.append(field)
        if field == "email":
            out.append("email_verified")
    return out


class UserCreateForm(EmailVerifiedMixin, AdminUserCreationForm):
    pass


class UserEditForm(EmailVerifiedMixin, UserChangeForm):
    pass


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    list_display = ["username", "email", "name", "role", "auth_provider", "is_active", "is_staff", "last_login"]
    list_filter = ["role", "auth_provider", "is_active", "is_staff", "is_superuser"]
    list_select_related = ["role"]
    search_fields = ["username", "email", "name", "first_name", "last_name"]
    show_full_result_count = False
    # What a user may do comes from their role: Django's own groups and per-user permissions are
    # not offered (staff/superuser still decide who may open this admin).
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Personal info", {"fields": ["name", "first_name", "last_name", "email"]}),
        ("Atrium", {"fields": ["role", "staff_role_follows_groups", "auth_provider", "openid_id", "ldap_id",
                               "terms_accepted"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_superuser"]}),
        ("Important dates", {"fields": ["last_login", "date_joined"]}),
    ]
    filter_horizontal = ()
    add_fieldsets = [
        *DjangoUserAdmin.add_fieldsets,
        ("Atrium", {"fields": ["email", "email_verified", "name", "role"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [(name, {**opts, "fields": _after_email(opts["fields"])}) for name, opts in fieldsets]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        user_set_email_verified(user=obj, verified=form.cleaned_data.get("email_verified", False))


# --- sign-in policy, API keys, audit log (issue 5) ---------------------------------------------
from auditlog.admin import LogEntryAdmin as AuditLogEntryAdmin  # noqa: E402
from auditlog.models import LogEntry  # noqa: E402
from django.contrib import messages  # noqa: E402
from django.contrib.admin.forms import AdminAuthenticationForm  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils.html import format_html  # noqa: E402

from accounts.models import ApiKey, SignInPolicy  # noqa: E402


def _deactivate(modeladmin, request, queryset):
    count = 0
    for user in queryset.filter(is_active=True):
        user.is_active = False
        user.save(update_fields=["is_active"])  # the post_save receiver ends sessions and API keys
        count += 1
    modeladmin.message_user(
        request, f"{count} user(s) deactivated; their sessions and API keys were ended.", messages.SUCCESS
    )


_deactivate.short_description = "Deactivate (end sessions, revoke API keys)"
UserAdmin.actions = [*(UserAdmin.actions or []), _deactivate]


@admin.register(SignInPolicy)
class SignInPolicyAdmin(admin.ModelAdmin):
    fieldsets = [
        ("Local accounts", {"fields": ["allow_signup", "signup_email_domains"]}),
        ("SSO and LDAP", {"fields": ["require_mapped_group"],
                          "description": "Groups map to roles on each role's page (SSO/LDAP groups)."}),
    ]

    def has_add_permission(self, request):
        return not SignInPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        from django.shortcuts import redirect

        policy = SignInPolicy.load()
        return redirect("admin:accounts_signinpolicy_change", policy.pk)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at", "created_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    raw_id_fields = ["user"]
    readonly_fields = ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created by their owner and shown only to them

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke()
            count += 1
        self.message_user(request, f"{count} API key(s) revoked.", messages.SUCCESS)


admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class AuditLogAdmin(AuditLogEntryAdmin):
    """Read-only (auditlog's admin refuses add/change/delete), filterable by who, what and when."""

    list_filter = [
        "action",
        ("actor", admin.RelatedOnlyFieldListFilter),
        *AuditLogEntryAdmin.list_filter[1:],
        "timestamp",
    ]


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's own login page cannot skip two-factor: accounts with an authenticator are sent
    to Atrium's sign-in page, which asks for the code."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        from allauth.mfa.models import Authenticator

        if Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            raise forms.ValidationError(
                format_html(
                    'This account uses two-factor authentication: <a href="{}?next=/admin/">sign in here</a>.',
                    reverse("account_login"),
                ),
                code="mfa_required",
            )


admin.site.login_form = AdminLoginForm
