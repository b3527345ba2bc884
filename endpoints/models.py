"""Configured AI provider connections (LibreChat `endpoints`), their models and rates, model specs."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from endpoints import config
from endpoints.adapters import (
    AnthropicAdapter,
    AzureOpenAIAdapter,
    OpenAIChatAdapter,
    OpenAIResponsesAdapter,
    protocol_choices,
)
from portal import crypto
from portal.fields import EncryptedTextField
from portal.models import RATE_FIELD


class Kind(models.TextChoices):
    OPENAI = "openAI", "OpenAI"
    AZURE_OPENAI = "azureOpenAI", "Azure OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    BEDROCK = "bedrock", "AWS Bedrock"
    GOOGLE = "google", "Google"
    CUSTOM = "custom", "Custom"


class Protocol:
    """Names in code for the registered wire protocols (`Endpoint.provider` values). The list, with
    its labels, is the registry's: `endpoints.adapters.ADAPTERS`."""

    OPENAI_CHAT = OpenAIChatAdapter.protocol
    ANTHROPIC = AnthropicAdapter.protocol
    OPENAI_RESPONSES = OpenAIResponsesAdapter.protocol
    AZURE_OPENAI = AzureOpenAIAdapter.protocol


# kinds whose protocol is fixed: saving such an endpoint sets it
KIND_PROTOCOLS = {Kind.ANTHROPIC: Protocol.ANTHROPIC, Kind.AZURE_OPENAI: Protocol.AZURE_OPENAI}


class AuthKind(models.TextChoices):
    API_KEY = "api_key", "API key"
    ACCESS_TOKEN = "access_token", "Access token (e.g. GCP)"
    NONE = "none", "None (local server)"


class TitleTiming(models.TextChoices):
    IMMEDIATE = "immediate", "immediate — in parallel with the first answer"
    FINAL = "final", "final — after the answer"


class TitleMethod(models.TextChoices):
    COMPLETION = "completion", "completion"
    STRUCTURED = "structured", "structured"
    FUNCTIONS = "functions", "functions (legacy alias of structured)"


class MessageRole(models.TextChoices):
    SYSTEM = "system", "system"
    USER = "user", "user"
    ASSISTANT = "assistant", "assistant"


# Where a built-in kind talks to when its baseURL is left empty.
DEFAULT_BASE_URLS = {
    Kind.OPENAI: "https://api.openai.com/v1",
    Kind.ANTHROPIC: "https://api.anthropic.com",
    Kind.GOOGLE: "https://generativelanguage.googleapis.com/v1beta/openai",
}
DEFAULT_TITLE_PROMPT_TEMPLATE = "User: {input}\nAI: {output}"


class EndpointQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class Endpoint(models.Model):
    name = models.CharField(
        max_length=100,
        help_text="Unique; the title in the endpoint selector. Reserved for built-in kinds: "
        + ", ".join(config.RESERVED_NAMES) + " (case-insensitive).",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CUSTOM)
    provider = models.CharField(
        "wire protocol",
        max_length=20,
        choices=protocol_choices,
        default=Protocol.OPENAI_CHAT,
        help_text="provider: which client talks to it. Anthropic uses the native /v1/messages "
        "client with this endpoint's baseURL, apiKey, headers, addParams, dropParams. Endpoints of "
        "kind anthropic and azureOpenAI always use their own.",
    )
    auth_kind = models.CharField(max_length=20, choices=AuthKind.choices, default=AuthKind.API_KEY)
    api_key = EncryptedTextField(
        "API key",
        blank=True,
        help_text="A secret, a ${ENV_VAR} reference (recommended) or user_provided (each user stores "
        "their own key). Encrypted at rest; shown masked.",
    )
    base_url = models.CharField(
        "base URL",
        max_length=2048,
        blank=True,
        help_text="A URL, ${ENV_VAR} reference or user_provided. /chat/completions (or the protocol's "
        "path) is appended unless 'direct endpoint' is on. For Anthropic: the API root, e.g. "
        "https://api.anthropic.com. Empty on a built-in kind: the provider's official URL.",
    )
    direct_endpoint = models.BooleanField(
        default=False, help_text="directEndpoint: baseURL is the full completion URL; nothing is appended."
    )
    icon_url = models.CharField(
        "icon URL",
        max_length=2048,
        blank=True,
        help_text="Image URL, public asset path (/assets/x.svg) or a built-in endpoint key to reuse its icon. "
        "Known names (groq, Mistral, OpenRouter, ollama, …) get their icon without it.",
    )
    models_fetch = models.BooleanField(
        "fetch models",
        default=False,
        help_text="models.fetch: GET {baseURL}/models (cached); on failure the listed models are used. "
        "Not available for the Anthropic protocol.",
    )
    user_id_query = models.BooleanField(
        default=False, help_text="userIdQuery: add the portal user's id as a query parameter to model-list requests."
    )
    title_convo = models.BooleanField(
        "generate titles", default=False, help_text="titleConvo: generate conversation titles."
    )
    title_timing = models.CharField(max_length=10, choices=TitleTiming.choices, default=TitleTiming.IMMEDIATE)
    title_method = models.CharField(max_length=12, choices=TitleMethod.choices, default=TitleMethod.COMPLETION)
    title_model = models.CharField(
        max_length=200,
        default="gpt-3.5-turbo",
        help_text="titleModel; 'current_model' uses the conversation's model.",
    )
    title_prompt = models.TextField(
        blank=True, help_text="titlePrompt; must contain {convo}. Empty: the built-in prompt."
    )
    title_prompt_template = models.TextField(
        default=DEFAULT_TITLE_PROMPT_TEMPLATE,
        help_text="titlePromptTemplate: how the exchange fills {convo}; must contain {input} and {output}.",
    )
    title_endpoint = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="titleEndpoint: another endpoint for titles (falls back to this one on error).",
    )
    title_message_role = models.CharField(
        max_length=10, choices=MessageRole.choices, default=MessageRole.SYSTEM, help_text="titleMessageRole."
    )
    model_display_label = models.CharField(
        max_length=100, default="AI", help_text="modelDisplayLabel: label beside the model icon in messages."
    )
    add_params = models.JSONField(
        "add params", default=dict, blank=True,
        help_text='addParams: object merged into every request body, e.g. {"web_search": true}.',
    )
    drop_params = models.JSONField(
        "drop params", default=list, blank=True,
        help_text='dropParams: default parameters removed from every request, e.g. ["stop", "user"].',
    )
    custom_params = models.JSONField(
        "custom params", default=dict, blank=True,
        help_text="customParams: defaultParamsEndpoint, reasoningFormat (reasoning_effort | reasoning_object | "
        "disabled), reasoningKey (reasoning | reasoning_content), paramDefinitions.",
    )
    headers = models.JSONField(
        default=dict, blank=True,
        help_text="Extra request headers (string values): ${ENV_VAR}, {{LIBRECHAT_USER_EMAIL}} and other "
        "{{LIBRECHAT_USER_*}} / {{LIBRECHAT_BODY_*}} placeholders. Never sent to a user_provided baseURL.",
    )
    query_params = models.JSONField(
        default=dict, blank=True,
        help_text='Query parameters on every request, e.g. Azure {"api-version": "2024-10-21"}.',
    )
    catalogue_key = models.CharField(max_length=40, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    ordering = models.PositiveIntegerField(default=0, help_text="Position in the endpoint selector.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["ordering", "name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="endpoint_name_unique_ci",
                violation_error_message="An endpoint with this name already exists (names are case-insensitive).",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Endpoint {self.pk} {self.name!r} {self.kind}/{self.provider} key={self.api_key_display}>"

    # --- secrets --------------------------------------------------------------------------
    @property
    def api_key_display(self) -> str:
        """What may be shown: references in full, literal secrets masked."""
        key = self.api_key or ""
        if not key or config.is_user_provided(key) or config.ENV_REF.fullmatch(key):
            return key
        return crypto.mask(key)

    @property
    def user_provides_key(self) -> bool:
        return config.is_user_provided(self.api_key)

    @property
    def user_provides_base_url(self) -> bool:
        return config.is_user_provided(self.base_url)

    @property
    def effective_base_url(self) -> str:
        """The configured baseURL (unresolved), or the official URL of a built-in kind."""
        return self.base_url or DEFAULT_BASE_URLS.get(self.kind, "")

    def listed_model_names(self) -> list[str]:
        return [m.name for m in self.models.all() if m.listed]

    # --- invariants -----------------------------------------------------------------------
    def clean(self) -> None:
        errors: dict[str, list] = {}

        def check(field: str, fn, *args, **kwargs) -> None:
            try:
                fn(*args, **kwargs)
            except ValidationError as exc:
                errors.setdefault(field, []).extend(exc.messages)

        check("name", config.validate_endpoint_name, self.name, self.kind)
        check("api_key", config.validate_api_key, self.api_key)
        check(
            "base_url",
            config.validate_base_url,
            self.base_url,
            required=self.kind in (Kind.CUSTOM, Kind.AZURE_OPENAI, Kind.BEDROCK),
        )
        check("title_prompt", config.validate_title_prompt, self.title_prompt)
        check("title_prompt_template", config.validate_title_prompt_template, self.title_prompt_template)
        check("headers", config.validate_headers, self.headers)
        check("add_params", config.validate_add_params, self.add_params)
        check("drop_params", config.validate_drop_params, self.drop_params)
        check("custom_params", config.validate_custom_params, self.custom_params)
        check("query_params", config.validate_string_map, self.query_params, "query params")
        if self.kind == Kind.ANTHROPIC and self.provider != Protocol.ANTHROPIC:
            errors.setdefault("provider", []).append("An anthropic endpoint uses the Anthropic protocol.")
        if self.models_fetch and self.provider == Protocol.ANTHROPIC:
            errors.setdefault("models_fetch", []).append(
                "models.fetch is not available with the Anthropic protocol; list the models explicitly."
            )
        if self.direct_endpoint and not self.base_url:
            errors.setdefault("direct_endpoint", []).append("directEndpoint needs a baseURL (the full completion URL).")
        if self.auth_kind != AuthKind.NONE and not self.api_key:
            errors.setdefault("api_key", []).append(
                "An API key is required (a secret, ${ENV_VAR} or user_provided), or set auth to 'None (local server)'."
            )
        if self.title_endpoint_id and self.title_endpoint_id == self.pk:
            errors.setdefault("title_endpoint", []).append(
                "titleEndpoint must be another endpoint (leave empty for this one)."
            )
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        self.provider = KIND_PROTOCOLS.get(self.kind, self.provider)
        super().save(*args, **kwargs)

    def deployment_for(self, model: str) -> str:
        """The deployment serving `model` (Azure: EndpointModel.deployment_name), else the model's name."""
        row = self.models.filter(name=model).values_list("deployment_name", flat=True).first()
        return row or model


class CapabilityFields(models.Model):
    """The capability columns of the LangChain chat-model table."""

    supports_tools = models.BooleanField("tool calling", default=False)
    supports_structured_output = models.BooleanField("structured output", default=False)
    supports_json_mode = models.BooleanField("JSON mode", default=False)
    supports_vision = models.BooleanField("vision / multimodal input", default=False)
    supports_reasoning = models.BooleanField("reasoning", default=False)
    runs_locally = models.BooleanField("runs locally", default=False)

    class Meta:
        abstract = True


class EndpointModel(CapabilityFields):
    """One model of an endpoint: listed in `models.default` and/or priced by `tokenConfig`."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="Exactly the model value sent to the provider.")
    label = models.CharField(max_length=200, blank=True, help_text="Display name (default: the model name).")
    listed = models.BooleanField(
        "in model list", default=True,
        help_text="Part of models.default (offered to users, and the fallback when fetching fails).",
    )
    ordering = models.PositiveIntegerField(default=0)
    deployment_name = models.CharField(
        max_length=200, blank=True, help_text="Azure: the deployment in the URL path (default: the model name)."
    )
    prompt_rate = models.DecimalField(
        "prompt", null=True, blank=True, help_text="USD per 1M prompt (input) tokens.", **RATE_FIELD
    )
    completion_rate = models.DecimalField(
        "completion", null=True, blank=True, help_text="USD per 1M completion (output) tokens.", **RATE_FIELD
    )
    context_tokens = models.PositiveIntegerField(
        "context", null=True, blank=True, help_text="Maximum context window in tokens."
    )
    cache_read_rate = models.DecimalField(
        "cache read",
        null=True,
        blank=True,
        help_text="USD per 1M cached input tokens read (default: prompt).",
        **RATE_FIELD,
    )
    cache_write_rate = models.DecimalField(
        "cache write",
        null=True,
        blank=True,
        help_text="USD per 1M input tokens written to cache (default: prompt).",
        **RATE_FIELD,
    )

    class Meta:
        ordering = ["endpoint", "ordering", "name"]
        constraints = [
            models.UniqueConstraint(
                "endpoint", "name", name="endpoint_model_unique",
                violation_error_message="This endpoint already lists a model with this name.",
            )
        ]
        verbose_name = "model"

    def __str__(self) -> str:
        return f"{self.endpoint.name} / {self.name}" if self.endpoint_id else self.name

    @property
    def has_rates(self) -> bool:
        return self.prompt_rate is not None and self.completion_rate is not None

    def clean(self) -> None:
        given = {
            "prompt_rate": self.prompt_rate,
            "completion_rate": self.completion_rate,
            "context_tokens": self.context_tokens,
        }
        optional = (self.cache_read_rate, self.cache_write_rate)
        if any(v is not None for v in (*given.values(), *optional)):
            missing = {f: "Required in a token rate (tokenConfig needs prompt, completion and context)."
                       for f, v in given.items() if v is None}
            if missing:
                raise ValidationError(missing)


class ReasoningEffort(models.TextChoices):
    MINIMAL = "minimal", "minimal"
    LOW = "low", "low"
    MEDIUM = "medium", "medium"
    HIGH = "high", "high"


class ModelSpec(models.Model):
    """A curated preset users pick from (LibreChat `modelSpecs.list[]`)."""

    name = models.CharField(max_length=100, unique=True, help_text="Unique key of the spec.")
    label = models.CharField(max_length=200, help_text="Shown in the selector.")
    description = models.TextField(blank=True)
    group = models.CharField(max_length=100, blank=True, help_text="Selector section; an endpoint name nests it there.")
    group_icon = models.CharField(max_length=2048, blank=True)
    icon_url = models.CharField("icon URL", max_length=2048, blank=True)
    order = models.IntegerField(default=0)
    is_default = models.BooleanField(
        "default", default=False, help_text="Selected for new chats (only one spec can be the default)."
    )
    enabled = models.BooleanField(default=True)
    # preset
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="model_specs")
    model = models.CharField(max_length=200)
    system_prompt = models.TextField(blank=True, help_text="preset.promptPrefix / instructions.")
    temperature = models.DecimalField(
        max_digits=4, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(2))],
    )
    top_p = models.DecimalField(
        max_digits=4, decimal_places=3, null=True, blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
    )
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=10, choices=ReasoningEffort.choices, blank=True)
    extra_params = models.JSONField(
        default=dict, blank=True, help_text="Any other paramDefinitions values (object: key → value)."
    )

    class Meta:
        ordering = ["order", "label"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_model_spec",
                violation_error_message="Only one model spec can be the default.",
            )
        ]

    def __str__(self) -> str:
        return self.label or self.name

    def preset_params(self) -> dict[str, object]:
        """The request parameters this spec sets (its system prompt is not one of them); fields the
        portal controls are never taken from `extra_params`."""
        params: dict[str, object] = {}
        if self.temperature is not None:
            params["temperature"] = float(self.temperature)
        if self.top_p is not None:
            params["top_p"] = float(self.top_p)
        if self.max_output_tokens:
            params["max_tokens"] = self.max_output_tokens
        if self.reasoning_effort:
            params["reasoning_effort"] = self.reasoning_effort
        extra = self.extra_params if isinstance(self.extra_params, dict) else {}
        params.update({k: v for k, v in extra.items() if k not in config.PORTAL_CONTROLLED_PARAMS})
        return params

    def clean(self) -> None:
        if not isinstance(self.extra_params, dict):
            raise ValidationError({"extra_params": "Must be an object of parameter → value."})
        if self.endpoint_id and self.model and not self.endpoint.models_fetch:
            known = set(self.endpoint.models.values_list("name", flat=True))
            if known and self.model not in known:
                raise ValidationError(
                    {"model": f"'{self.model}' is not a model of endpoint '{self.endpoint.name}' "
                              f"(known: {', '.join(sorted(known))})."}
                )
        if self.is_default:
            clash = ModelSpec.objects.filter(is_default=True).exclude(pk=self.pk).first()
            if clash:
                raise ValidationError({"is_default": f"'{clash}' is already the default model spec."})


class UserProviderKey(models.Model):
    """A user's own key (and base URL) for an endpoint configured as `user_provided`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_keys")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="user_keys")
    api_key = EncryptedTextField(blank=True)
    base_url = EncryptedTextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "user", "endpoint", name="one_key_per_user_endpoint",
                violation_error_message="You already stored a key for this endpoint.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} / {self.endpoint}"

    def __repr__(self) -> str:
        return (
            f"<UserProviderKey user={self.user_id} endpoint={self.endpoint_id} key={crypto.mask(self.api_key or '')}>"
        )


class UpstreamFailure(models.Model):
    """One call to a provider that ended in an error (written by `endpoints.services.stream_chat`,
    only on failure, so successful answers cost nothing here). Endpoint health and the dashboard's
    failed calls read these; the message is the one users saw, scrubbed of keys."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="failures", db_index=False)
    model = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=20, help_text="auth, not_found, rate_limit, server, connect, timeout, cut, …")
    status = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["endpoint", "-created_at"], name="failure_endpoint_recent"),
                   models.Index(fields=["created_at"], name="failure_day")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.endpoint_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"
