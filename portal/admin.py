"""Portal settings admin and admin helpers shared by the apps."""
from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.functional import cached_property

from portal.models import PortalSettings


class LargeTablePaginator(Paginator):
    """For tables with millions of rows (messages, transactions): never an unbounded COUNT(*).

    Counts at most CAP + 1 rows (`SELECT COUNT(*) FROM (... LIMIT CAP+1)`), so a page loads in the
    same time on a thousand rows or a hundred million; beyond the cap, filter or search to narrow
    down. Pair with `show_full_result_count = False` on the ModelAdmin.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()


class LargeTableAdmin(admin.ModelAdmin):
    paginator = LargeTablePaginator
    show_full_result_count = False
    list_per_page = 50


@admin.register(PortalSettings)
class PortalSettingsAdmin(admin.ModelAdmin):
    fieldsets = [
        ("Model specs", {"fields": ["model_specs_enforce", "model_specs_prioritize"]}),
        ("Cost display (interface.currency)", {"fields": ["currency_code", "currency_symbol", "currency_rate"]}),
        ("Temporary chats", {"fields": ["temporary_chat_retention_hours"]}),
        (
            "Models without configured rates",
            {
                "fields": ["default_prompt_rate", "default_completion_rate", "default_context_tokens"],
                "description": "Applied to any model whose endpoint has no token rate for it, so no call is ever free.",
            },
        ),
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        settings_row = PortalSettings.load()
        return redirect(reverse("admin:portal_portalsettings_change", args=[settings_row.pk]))
