from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count

from accounts.models import PERMISSIONS, Role, RoleGroup, User


class RoleGroupInline(admin.TabularInline):
    model = RoleGroup
    extra = 1
    verbose_name = "SSO/LDAP group mapped to this role"
    verbose_name_plural = "SSO/LDAP groups mapped to this role"


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    inlines = [RoleGroupInline]
    list_display = ["name", "label", "is_default", "priority", "requires_2fa", "balance_enabled", "start_balance", "user_count"]
    list_filter = ["is_default", "balance_enabled", "auto_refill_enabled", "requires_2fa"]
    search_fields = ["name", "label", "groups__group_name"]
    filter_horizontal = ["allowed_endpoints", "allowed_model_specs"]
    fieldsets = [
        (None, {"fields": ["name", "label", "description", "is_default", "priority", "requires_2fa"]}),
        ("Permissions", {"fields": [field for field, _label, _default in PERMISSIONS]}),
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


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "name", "role", "auth_provider", "is_active", "is_staff", "last_login"]
    list_filter = ["role", "auth_provider", "is_active", "is_staff", "is_superuser"]
    list_select_related = ["role"]
    search_fields = ["username", "email", "name", "first_name", "last_name"]
    show_full_result_count = False
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        ("Atrium", {"fields": ["name", "role", "auth_provider", "openid_id", "ldap_id", "terms_accepted"]}),
    ]
    add_fieldsets = [
        *DjangoUserAdmin.add_fieldsets,
        ("Atrium", {"fields": ["email", "name", "role"]}),
    ]
