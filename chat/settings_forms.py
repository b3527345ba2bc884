"""The forms of the settings pages. They only parse and check what was typed; the work is done by
the services the REST API calls (accounts.services, endpoints.services, chat.importers)."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def end_of_day(day: dt.date) -> dt.datetime:
    """The first moment after `day` in the current time zone: a date picked as the last valid day."""
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))


class _LastDayField(forms.DateField):
    """An optional date, the last day something stays valid; today or later."""

    widget = forms.DateInput(attrs={"type": "date"})

    def clean(self, value: object) -> dt.date | None:
        day: dt.date | None = super().clean(value)
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError(_("The expiry date must be in the future."), code="past")
        return day


class ApiKeyForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100,
                           help_text=_("What the key is for, e.g. “laptop scripts”."))
    expires_on = _LastDayField(label=_("Valid until (optional)"), required=False,
                               help_text=_("The key stops working after this day. Empty: it never expires."))

    def expires_at(self) -> dt.datetime | None:
        day: dt.date | None = self.cleaned_data.get("expires_on")
        return end_of_day(day) if day else None


class ProviderKeyForm(forms.Form):
    """A key and/or base URL for one endpoint; the fields shown are the ones the endpoint takes.
    Nothing stored is ever put back into the form: it is write-only."""

    api_key = forms.CharField(label=_("API key"), max_length=4000, required=False, strip=True,
                              widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    base_url = forms.URLField(label=_("Base URL"), max_length=2048, required=False, assume_scheme="https",
                              widget=forms.URLInput(attrs={"autocomplete": "off", "placeholder": "https://"}))
    expires_on = _LastDayField(label=_("Valid until (optional)"), required=False)

    def __init__(self, *args: object, needs_key: bool = True, needs_base_url: bool = False,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if needs_key:
            self.fields["api_key"].required = True
        else:
            del self.fields["api_key"]
        if needs_base_url:
            self.fields["base_url"].required = True
        else:
            del self.fields["base_url"]

    def expires_at(self) -> dt.datetime | None:
        day: dt.date | None = self.cleaned_data.get("expires_on")
        return end_of_day(day) if day else None


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("Export file"),
        help_text=_("A ChatGPT or Claude data export (.zip or conversations.json), a LibreChat JSON export "
                    "or a Chatbot UI export."),
        widget=forms.ClearableFileInput(attrs={"accept": ".json,.zip,application/json,application/zip"}),
    )
