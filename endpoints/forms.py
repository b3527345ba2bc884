"""Admin forms for endpoints: the API key is write-only (a stored secret is never sent back)."""
from __future__ import annotations

from django import forms
from django.forms.models import BaseInlineFormSet

from endpoints.catalogue import PROVIDERS
from endpoints.models import Endpoint


class EndpointForm(forms.ModelForm):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "size": 60}),
        help_text=Endpoint._meta.get_field("api_key").help_text,
    )
    clear_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = Endpoint
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stored_key = self.instance.api_key if self.instance.pk else ""
        if self._stored_key and self.instance.api_key_display != self._stored_key:
            # a literal secret: show only its mask, never the value
            self.initial["api_key"] = ""
            self.fields["api_key"].widget.attrs["placeholder"] = (
                f"{self.instance.api_key_display} (stored; leave empty to keep it)"
            )
        else:
            self.initial["api_key"] = self._stored_key
            self.fields.pop("clear_api_key")

    def clean_api_key(self) -> str:
        value = self.cleaned_data.get("api_key", "")
        if not value and self._stored_key and not self.data.get(self.add_prefix("clear_api_key")):
            return self._stored_key
        return value


class EndpointModelFormSet(BaseInlineFormSet):
    """An endpoint needs at least one model in its list (models.default is required)."""

    def clean(self) -> None:
        super().clean()
        listed = [
            form for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("listed")
        ]
        if not listed:
            raise forms.ValidationError(
                "models.default is required: add at least one model with 'in model list' ticked "
                "(it is also the fallback when fetching models fails)."
            )


class CatalogueForm(forms.Form):
    provider = forms.ChoiceField(
        choices=[(p.key, f"{p.name} — {p.base_url}") for p in PROVIDERS],
        help_text="Wire protocol, base URL, auth kind and a starting model list come from the catalogue.",
    )
    name = forms.CharField(
        required=False, max_length=100, help_text="Default: the provider's name.",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "class": "vTextField"}),
        help_text="Paste a key (stored encrypted), or a ${ENV_VAR} reference, or user_provided. "
        "Empty: the provider's usual environment variable, e.g. ${GROQ_API_KEY}.",
    )
    base_url = forms.CharField(
        label="Base URL", required=False, max_length=2048, widget=forms.URLInput(attrs={"class": "vURLField"}),
        help_text="Only to override the catalogue's URL (Azure resource, Vertex region, a self-hosted server).",
    )
    models = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField"}),
        help_text="One model name per line. Empty: the catalogue's models.",
    )

    def cleaned_models(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("models", "").splitlines() if line.strip()]
