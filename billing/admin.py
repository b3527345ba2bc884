"""Admin for the ledger: balances (with adjustments), the read-only transaction list and usage
reports by user, role, endpoint, model and day with CSV export."""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from functools import cached_property
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts.models import User
from billing import selectors, services
from billing.models import Balance, Transaction
from billing.pricing import Currency, format_credits
from portal.admin import LargeTableAdmin


class AdjustForm(forms.Form):
    credits = forms.DecimalField(
        max_digits=20,
        decimal_places=6,
        help_text="Credits to add (negative to remove). 1 USD = 1,000,000 credits.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: kept in the ledger with your name.",
    )

    def clean_credits(self) -> Decimal:
        value: Decimal = self.cleaned_data["credits"]
        if value == 0:
            raise forms.ValidationError("Enter a non-zero number of credits.")
        return value


@admin.register(Balance)
class BalanceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # (generic in django-stubs only)
    list_display = ("user", "role", "credits_display", "amount_display", "balance_enabled", "last_refill_at",
                    "updated_at", "adjust_link")
    list_select_related = ("user__role",)
    list_filter = ("user__role",)
    search_fields = ("user__username", "user__email", "user__name")
    readonly_fields = ("user", "role", "credits_display", "amount_display", "last_refill_at", "created_at",
                       "updated_at", "adjust_link")
    fields = readonly_fields
    actions = ("adjust_selected",)
    ordering = ("user__username",)
    show_full_result_count = False

    @cached_property
    def currency(self) -> Currency:
        return selectors.display_currency()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Balance]:
        self.__dict__.pop("currency", None)  # re-read the display currency once per request
        return super().get_queryset(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # balances are opened by the ledger (start balance) on first login

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # would orphan the user's ledger

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # credits move only through adjustments (a saved form could undo a concurrent call)

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_balance")

    @admin.display(description="role", ordering="user__role__name")
    def role(self, obj: Balance) -> str:
        return str(obj.user.role) if obj.user.role_id else "—"

    @admin.display(description="credits", ordering="credits")
    def credits_display(self, obj: Balance) -> str:
        return format_credits(obj.credits)

    @admin.display(description="amount")
    def amount_display(self, obj: Balance) -> str:
        return f"{self.currency.format(obj.credits)} {self.currency.code}"

    @admin.display(description="balance enforced", boolean=True)
    def balance_enabled(self, obj: Balance) -> bool:
        return bool(obj.user.role is not None and obj.user.role.balance_enabled)

    @admin.display(description="")
    def adjust_link(self, obj: Balance) -> str:
        url = reverse("admin:billing_balance_adjust") + f"?ids={obj.pk}"
        return format_html('<a href="{}">Adjust…</a>', url)

    @admin.action(description="Adjust the balance of the selected users…", permissions=["adjust"])
    def adjust_selected(self, request: HttpRequest, queryset: QuerySet[Balance]) -> HttpResponseRedirect:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(reverse("admin:billing_balance_adjust") + f"?ids={ids}")

    def get_urls(self) -> list[URLPattern]:
        return [
            path("adjust/", self.admin_site.admin_view(self.adjust_view), name="billing_balance_adjust"),
            *super().get_urls(),
        ]

    def adjust_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        raw_ids = request.GET.get("ids", "")
        try:
            ids = [int(pk) for pk in raw_ids.split(",") if pk.strip()]
        except ValueError:
            ids = []
        balances = list(Balance.objects.filter(pk__in=ids).select_related("user__role").order_by("user__username"))
        if not balances:
            self.message_user(request, "Select at least one balance to adjust.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:billing_balance_changelist"))
        form = AdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                for balance in balances:
                    services.adjust_balance(
                        user=balance.user,
                        credits=form.cleaned_data["credits"],
                        reason=form.cleaned_data["reason"],
                        by=cast(User, request.user),  # (admin_view: a staff user)
                    )
            except services.BillingError as exc:
                form.add_error(None, str(exc))
            else:
                amount = form.cleaned_data["credits"]
                self.message_user(
                    request,
                    f"Adjusted {len(balances)} balance(s) by {format_credits(amount)} credits "
                    f"({self.currency.format(amount)}).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_balance_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Adjust balance",
            "form": form,
            "balances": [
                (b, format_credits(b.credits), self.currency.format(b.credits)) for b in balances
            ],
            "currency": self.currency,
        }
        return TemplateResponse(request, "admin/billing/adjust.html", context)


@admin.register(Transaction)
class TransactionAdmin(LargeTableAdmin):
    """The ledger, read-only. Counts at most 10,001 rows per list (LargeTablePaginator)."""

    list_display = ("created_at", "user", "token_type", "context", "tokens", "rate", "credits", "model",
                    "endpoint_name", "estimated", "conversation_id", "created_by")
    list_select_related = ("user", "created_by")
    list_filter = ("token_type", "context", "estimated", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=user__username", "=model", "=endpoint_name")
    ordering = ("-id",)
    list_per_page = 100
    change_list_template = "admin/billing/transaction/change_list.html"
    readonly_fields = ("user", "role", "created_at", "token_type", "context", "tokens", "rate", "credits",
                       "endpoint", "endpoint_name", "model", "conversation", "message", "estimated", "reason",
                       "created_by")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("report/", self.admin_site.admin_view(self.report_view), name="billing_transaction_report"),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ReportForm(request.GET or {"group_by": "user"})
        rows: list[selectors.ReportRow] = []
        totals: selectors.UsageTotals | None = None
        group_by = "user"
        if form.is_valid():
            group_by = form.cleaned_data["group_by"]
            rows, totals = selectors.usage_report(
                group_by=group_by, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
            )
            if request.GET.get("format") == "csv":
                return report_csv(rows, totals, group_by, form.cleaned_data["start"], form.cleaned_data["end"])
        currency = selectors.display_currency()
        query = request.GET.copy()
        query["format"] = "csv"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Usage report",
            "form": form,
            "rows": rows,
            "totals": totals,
            "group_by": group_by,
            "group_label": dict(ReportForm.GROUPS)[group_by],
            "currency": currency,
            "csv_query": query.urlencode(),
        }
        return TemplateResponse(request, "admin/billing/usage_report.html", context)


class ReportForm(forms.Form):
    GROUPS = [("user", "user"), ("role", "role"), ("endpoint", "endpoint"), ("model", "model"), ("day", "day")]

    group_by = forms.ChoiceField(choices=GROUPS, initial="user")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="First day.")
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Last day.")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The first day must be on or before the last day.")
        return data


CSV_COLUMNS = ["prompt_tokens", "cache_read_tokens", "cache_write_tokens", "completion_tokens", "total_tokens",
               "credits", "cost", "estimated"]


def report_csv(
    rows: list[selectors.ReportRow], totals: Any, group_by: str, start: dt.date | None, end: dt.date | None
) -> HttpResponse:
    currency = selectors.display_currency()
    span = f"{start or 'start'}_{end or 'today'}"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-by-{group_by}-{span}.csv"'
    writer = csv.writer(response)
    writer.writerow([group_by, *CSV_COLUMNS[:-2], f"cost_{currency.code}", "estimated"])
    for row in [*rows, selectors.ReportRow("TOTAL", "TOTAL", totals)]:
        usage = row.usage
        writer.writerow([
            row.label,
            usage.prompt_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.completion_tokens,
            usage.total_tokens,
            f"{usage.credits:f}",
            f"{currency.exact_amount(usage.credits):f}",
            "yes" if usage.estimated else "",
        ])
    return response
