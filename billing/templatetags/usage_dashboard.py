"""`{% usage_dashboard %}`: the usage dashboard on the admin's landing page (templates/admin/index.html)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms, template
from django.utils import timezone

from billing.dashboard import dashboard

register = template.Library()
PERIODS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366


class PeriodForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        today = timezone.localdate()
        end = data.get("end") or today
        start = data.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The first day must be on or before the last day.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days (the usage report covers longer spans).")
        data.update(start=start, end=end)
        return data


@register.inclusion_tag("admin/billing/dashboard.html", takes_context=True)
def usage_dashboard(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    if not request.user.has_perm("billing.view_transaction"):
        return {"allowed": False}
    form = PeriodForm(request.GET or None)
    valid = form.is_valid() if request.GET else True
    today = timezone.localdate()
    if request.GET and valid:
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    else:
        start, end = today - dt.timedelta(days=DEFAULT_DAYS - 1), today
    shortcuts = [(days, (today - dt.timedelta(days=days - 1)).isoformat(), today.isoformat()) for days in PERIODS]
    return {
        "allowed": True,
        "form": form,
        "board": dashboard(start=start, end=end),
        "shortcuts": shortcuts,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
