from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max, Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from endpoints import demo
from endpoints.catalogue import BY_KEY, create_endpoint_from_catalogue
from endpoints.forms import CatalogueForm, EndpointForm, EndpointModelFormSet
from endpoints.health import HEALTH_WINDOW, connection_test
from endpoints.models import Endpoint, EndpointModel, ModelSpec, UserProviderKey
from portal import crypto

RATE_FIELDS = ["prompt_rate", "completion_rate", "context_tokens", "cache_read_rate", "cache_write_rate"]
CAPABILITY_FIELDS = [
    "supports_tools", "supports_structured_output", "supports_json_mode", "supports_vision",
    "supports_reasoning", "runs_locally",
]


class EndpointModelInline(admin.TabularInline):
    model = EndpointModel
    formset = EndpointModelFormSet
    # Models and their rates, all columns visible at 1,400 px; each model's capabilities are on its
    # own page (the row's "Change" link, and Models in the menu).
    fields = ["name", "listed", "label", "ordering", *RATE_FIELDS, "deployment_name"]
    show_change_link = True
    extra = 0
    min_num = 1
    verbose_name = "model (models.default + tokenConfig)"
    verbose_name_plural = "models and token rates (USD per 1M tokens; context in tokens)"


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    inlines = [EndpointModelInline]
    list_display = ["name_display", "kind", "provider", "base_url_display", "key_display", "model_count", "health",
                    "enabled", "ordering"]
    list_display_links = ["name_display"]
    list_editable = ["enabled", "ordering"]
    list_filter = ["kind", "provider", "enabled", "models_fetch", "title_convo"]
    search_fields = ["name", "base_url"]
    autocomplete_fields = ["title_endpoint"]
    change_list_template = "admin/endpoints/endpoint/change_list.html"
    change_form_template = "admin/endpoints/endpoint/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "kind", "provider", "enabled", "ordering"]}),
        (
            "Connection",
            {"fields": ["auth_kind", "api_key", "clear_api_key", "base_url", "direct_endpoint", "query_params", "headers"]},
        ),
        ("Model list", {"fields": ["models_fetch", "user_id_query"]}),
        (
            "Titles",
            {
                "classes": ["collapse"],
                "fields": [
                    "title_convo", "title_timing", "title_method", "title_model", "title_endpoint",
                    "title_message_role", "title_prompt", "title_prompt_template",
                ],
            },
        ),
        ("Request parameters", {"classes": ["collapse"], "fields": ["add_params", "drop_params", "custom_params"]}),
        ("Display", {"classes": ["collapse"], "fields": ["model_display_label", "icon_url"]}),
    ]

    def get_queryset(self, request):
        since = timezone.now() - HEALTH_WINDOW
        return super().get_queryset(request).annotate(
            _model_count=Count("models", distinct=True),
            _recent_failures=Count("failures", filter=Q(failures__created_at__gte=since), distinct=True),
            _last_failure=Max("failures__created_at"),
        )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        form_has_clear = obj is not None and obj.api_key and obj.api_key_display != obj.api_key
        if form_has_clear:
            return fieldsets
        return [
            (title, {**opts, "fields": [f for f in opts["fields"] if f != "clear_api_key"]})
            for title, opts in fieldsets
        ]

    @admin.display(description="name", ordering="name")
    def name_display(self, obj: Endpoint) -> str:
        if obj.catalogue_key == demo.CATALOGUE_KEY:
            return format_html('{} <span class="atrium-badge" title="Atrium\'s built-in demo model">demo</span>', obj.name)
        return obj.name

    @admin.display(description="health (24 h)")
    def health(self, obj: Endpoint) -> str:
        """Failed calls in the last day, and when the last one happened (details on the dashboard)."""
        if not obj._recent_failures:
            return "ok" if obj._last_failure is None else format_html(
                '<span title="last failure {}">ok</span>', obj._last_failure.isoformat(timespec="minutes"))
        return format_html('<span class="atrium-failing-badge">{} failed</span>, last {} ago',
                           obj._recent_failures, timesince(obj._last_failure))

    @admin.display(description="base URL")
    def base_url_display(self, obj: Endpoint) -> str:
        return obj.effective_base_url

    @admin.display(description="API key")
    def key_display(self, obj: Endpoint) -> str:
        return obj.api_key_display or "—"

    @admin.display(description="models", ordering="_model_count")
    def model_count(self, obj: Endpoint) -> int:
        return obj._model_count

    def get_urls(self):
        return [
            path(
                "from-catalogue/",
                self.admin_site.admin_view(self.catalogue_view),
                name="endpoints_endpoint_catalogue",
            ),
            path(
                "<int:pk>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name="endpoints_endpoint_test_connection",
            ),
            *super().get_urls(),
        ]

    def test_connection_view(self, request, pk: int):
        """POST: ask the endpoint for its model list (`GET {baseURL}/models`, not cached) and say
        what it answered, on the endpoint's page."""
        endpoint = self.get_object(request, str(pk))
        if endpoint is None or not self.has_view_permission(request, endpoint):
            raise PermissionDenied
        change_url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
        if request.method != "POST":
            return redirect(change_url)
        result = connection_test(endpoint, request.user)
        messages.add_message(request, messages.SUCCESS if result.ok else messages.ERROR, result.message)
        return redirect(change_url)

    def catalogue_view(self, request):
        """Create an endpoint in one step from the provider catalogue."""
        if not self.has_add_permission(request):
            return redirect(reverse("admin:index"))
        form = CatalogueForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                endpoint = create_endpoint_from_catalogue(
                    provider_key=form.cleaned_data["provider"],
                    name=form.cleaned_data["name"],
                    api_key=form.cleaned_data["api_key"],
                    base_url=form.cleaned_data["base_url"],
                    models=form.cleaned_models(),
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    target = field if field in form.fields else None
                    for error in errors:
                        form.add_error(target, error)
            else:
                self.log_addition(request, endpoint, [{"added": {}}])
                messages.success(
                    request,
                    f"Endpoint “{endpoint.name}” created from the catalogue ({BY_KEY[endpoint.catalogue_key].name}). "
                    "Review its models and token rates below.",
                )
                return redirect(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Add an endpoint from the provider catalogue",
            "form": form,
            "opts": self.model._meta,
            "providers": BY_KEY.values(),
        }
        return TemplateResponse(request, "admin/endpoints/endpoint/catalogue.html", context)


@admin.register(EndpointModel)
class EndpointModelAdmin(admin.ModelAdmin):
    """Token rates across all endpoints, editable in the list (LibreChat tokenConfig)."""

    list_display = ["name", "endpoint", "listed", *RATE_FIELDS]
    list_editable = RATE_FIELDS
    list_filter = ["endpoint", "listed", "supports_vision", "supports_tools", "supports_reasoning", "runs_locally"]
    list_select_related = ["endpoint"]
    search_fields = ["name", "endpoint__name"]
    autocomplete_fields = ["endpoint"]
    fieldsets = [
        (None, {"fields": ["endpoint", "name", "label", "listed", "ordering", "deployment_name"]}),
        ("Token rates (USD per 1M tokens)", {"fields": RATE_FIELDS}),
        ("Capabilities", {"fields": CAPABILITY_FIELDS}),
    ]


@admin.register(ModelSpec)
class ModelSpecAdmin(admin.ModelAdmin):
    list_display = ["label", "name", "endpoint", "model", "group", "is_default", "enabled", "order"]
    list_editable = ["enabled", "order"]
    list_filter = ["enabled", "is_default", "endpoint", "group"]
    list_select_related = ["endpoint"]
    search_fields = ["name", "label", "description", "model"]
    autocomplete_fields = ["endpoint"]
    fieldsets = [
        (None, {"fields": ["name", "label", "description", "enabled", "is_default", "order"]}),
        ("Selector", {"fields": ["group", "group_icon", "icon_url"]}),
        (
            "Preset",
            {
                "fields": [
                    "endpoint", "model", "system_prompt", "temperature", "top_p", "max_output_tokens",
                    "reasoning_effort", "extra_params",
                ]
            },
        ),
    ]


@admin.register(UserProviderKey)
class UserProviderKeyAdmin(admin.ModelAdmin):
    """Users' own keys: admins see that a key exists (masked) and can delete it, never read it."""

    list_display = ["user", "endpoint", "masked_key", "expires_at", "updated_at"]
    list_filter = ["endpoint"]
    list_select_related = ["user", "endpoint"]
    search_fields = ["user__username", "user__email", "endpoint__name"]
    fields = ["user", "endpoint", "masked_key", "expires_at", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="API key")
    def masked_key(self, obj: UserProviderKey) -> str:
        return format_html("<code>{}</code>", crypto.mask(obj.api_key or "")) if obj.api_key else "—"
