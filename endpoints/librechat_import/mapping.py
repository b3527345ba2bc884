"""How LibreChat's keys map onto Atrium's fields, what LibreChat assumes when the file says nothing,
and why each key Atrium does not import is skipped."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from endpoints.models import DEFAULT_BASE_URLS, Kind, Protocol

# Keys of LibreChat's custom-endpoint object that map one-to-one onto an Endpoint field:
# YAML key -> (model field, expected YAML type). `None` means "any JSON value": its rule lives in
# endpoints/config.py and runs in Endpoint.clean().
ENDPOINT_KEYS: dict[str, tuple[str, type | None]] = {
    "name": ("name", str),
    "apiKey": ("api_key", str),
    "baseURL": ("base_url", str),
    "provider": ("provider", str),
    "iconURL": ("icon_url", str),
    "userIdQuery": ("user_id_query", bool),
    "titleConvo": ("title_convo", bool),
    "titleTiming": ("title_timing", str),
    "titleMethod": ("title_method", str),
    "titleModel": ("title_model", str),
    "titlePrompt": ("title_prompt", str),
    "titlePromptTemplate": ("title_prompt_template", str),
    "titleMessageRole": ("title_message_role", str),
    "modelDisplayLabel": ("model_display_label", str),
    "addParams": ("add_params", None),
    "dropParams": ("drop_params", None),
    "customParams": ("custom_params", None),
    "headers": ("headers", None),
    "directEndpoint": ("direct_endpoint", bool),
}
# Keys handled with their own code (references, nested objects).
ENDPOINT_SPECIAL_KEYS = ("models", "tokenConfig", "titleEndpoint")
# Endpoint fields the file describes completely: a key left out goes back to the field's default.
ENDPOINT_FILE_FIELDS = [f for f, _ in ENDPOINT_KEYS.values()] + ["models_fetch"]
# For error messages: model field -> YAML key.
FIELD_KEYS = {f: key for key, (f, _) in ENDPOINT_KEYS.items()} | {
    "models_fetch": "models.fetch",
    "title_endpoint": "titleEndpoint",
    "auth_kind": "apiKey",
}

ENDPOINT_SKIP_REASONS = {
    "streamRate": "Atrium streams every delta as it arrives",
    "summarize": "conversation summarisation is not part of Atrium",
    "summaryModel": "conversation summarisation is not part of Atrium",
    "forcePrompt": "Atrium always uses the chat/messages APIs",
    "activityLabel": "activity labels are not part of Atrium",
    "activityModel": "activity labels are not part of Atrium",
    "plugins": "LibreChat plugins are not part of Atrium",
    "assistants": "the Assistants API is not part of Atrium",
    "capabilities": "the Assistants API is not part of Atrium",
    "availableRegions": "Atrium's Bedrock endpoint uses one region: set BEDROCK_AWS_DEFAULT_REGION",
    "guardrailConfig": "Bedrock guardrails are not part of Atrium",
    "vertex": "Vertex AI routing is not part of Atrium; use the google endpoint or a custom endpoint",
    "fileLimit": "file limits are not imported",
}
NOT_AN_ENDPOINT_KEY = "not a key of LibreChat's endpoint object that Atrium imports"

# Built-in kinds: what LibreChat uses when the YAML says nothing (it reads these from its .env).
BUILTIN_KEYS = {"openai": Kind.OPENAI, "anthropic": Kind.ANTHROPIC, "google": Kind.GOOGLE, "bedrock": Kind.BEDROCK}
BUILTIN_DEFAULTS: dict[str, dict[str, Any]] = {
    Kind.OPENAI: {
        "api_key": "${OPENAI_API_KEY}",
        "base_url": DEFAULT_BASE_URLS[Kind.OPENAI],
        "models_fetch": True,
        "model_display_label": "OpenAI",
    },
    Kind.ANTHROPIC: {
        "api_key": "${ANTHROPIC_API_KEY}",
        "base_url": DEFAULT_BASE_URLS[Kind.ANTHROPIC],
        "provider": Protocol.ANTHROPIC,
        "model_display_label": "Claude",
    },
    Kind.GOOGLE: {
        "api_key": "${GOOGLE_KEY}",
        "base_url": DEFAULT_BASE_URLS[Kind.GOOGLE],
        "models_fetch": True,
        "model_display_label": "Gemini",
    },
    Kind.BEDROCK: {
        # Bedrock's OpenAI-compatible Chat Completions API, authenticated with a Bedrock API key.
        "api_key": "${AWS_BEARER_TOKEN_BEDROCK}",
        "base_url": "https://bedrock-runtime.${BEDROCK_AWS_DEFAULT_REGION}.amazonaws.com/openai/v1",
        "model_display_label": "Bedrock",
    },
}
BUILTIN_ORDER = [Kind.OPENAI, Kind.AZURE_OPENAI, Kind.GOOGLE, Kind.ANTHROPIC, Kind.BEDROCK]

AZURE_GROUP_KEYS = {
    "group", "apiKey", "instanceName", "deploymentName", "version", "baseURL", "additionalHeaders",
    "serverless", "addParams", "dropParams", "models",
}
AZURE_HOST = "https://{instance}.openai.azure.com/openai/deployments"

RATE_KEYS = {
    "prompt": "prompt_rate",
    "completion": "completion_rate",
    "context": "context_tokens",
    "cacheRead": "cache_read_rate",
    "cacheWrite": "cache_write_rate",
}
RATE_FIELD_KEYS = {f: key for key, f in RATE_KEYS.items()}

SPEC_KEYS: dict[str, tuple[str, type]] = {
    "label": ("label", str),
    "description": ("description", str),
    "group": ("group", str),
    "groupIcon": ("group_icon", str),
    "iconURL": ("icon_url", str),
    "order": ("order", int),
    "default": ("is_default", bool),
}
SPEC_FIELD_KEYS = {f: key for key, (f, _) in SPEC_KEYS.items()} | {
    "name": "name",
    "endpoint": "preset.endpoint",
    "model": "preset.model",
    "system_prompt": "preset.promptPrefix",
    "temperature": "preset.temperature",
    "top_p": "preset.top_p",
    "max_output_tokens": "preset.maxOutputTokens",
    "reasoning_effort": "preset.reasoning_effort",
    "extra_params": "preset",
}
# Preset keys with a column of their own, in order of preference when a file gives several.
PRESET_SYSTEM_PROMPT = ("promptPrefix", "instructions")
PRESET_TOP_P = ("top_p", "topP")
PRESET_MAX_TOKENS = ("maxOutputTokens", "max_tokens", "maxTokens", "max_output_tokens")
PRESET_REASONING = ("reasoning_effort", "reasoningEffort")

BALANCE_KEYS: dict[str, tuple[str, type]] = {
    "enabled": ("balance_enabled", bool),
    "startBalance": ("start_balance", Decimal),
    "autoRefillEnabled": ("auto_refill_enabled", bool),
    "refillIntervalValue": ("refill_interval_value", int),
    "refillIntervalUnit": ("refill_interval_unit", str),
    "refillAmount": ("refill_amount", Decimal),
}
CURRENCY_KEYS = {"code": ("currency_code", str), "symbol": ("currency_symbol", str), "rate": ("currency_rate", Decimal)}

TOP_LEVEL_SKIP_REASONS = {
    "cache": "LibreChat's config-cache switch; Atrium keeps its configuration in the database",
    "registration": "sign-in methods come from Atrium's settings (allauth, OIDC, LDAP), see README",
    "actions": "agent actions are not part of Atrium",
    "fileStrategy": "file storage is not configured from librechat.yaml",
    "fileConfig": "upload limits are not configured from librechat.yaml",
    "rateLimits": "rate limits are Atrium settings, not imported",
    "speech": "speech-to-text / text-to-speech are not part of Atrium",
    "mcpServers": "MCP servers are not imported",
    "memory": "memories are not imported",
    "webSearch": "web search providers are not imported",
    "ocr": "OCR is not part of Atrium",
    "turnstile": "captcha is not part of Atrium",
    "transactions": "Atrium always records a transaction for every billed call",
    "includedTools": "LibreChat tools are not part of Atrium",
    "filteredTools": "LibreChat tools are not part of Atrium",
    "imageOutputType": "image output settings are not imported",
    "secureImageLinks": "image output settings are not imported",
}
ENDPOINTS_SKIP_REASONS = {
    "assistants": "the Assistants API is not part of Atrium",
    "azureAssistants": "the Assistants API is not part of Atrium",
    "agents": "LibreChat agents are not imported",
    "all": "Atrium has no settings shared by all endpoints; set them per endpoint",
    "gptPlugins": "LibreChat plugins are not part of Atrium",
}
INTERFACE_REASON = (
    "not modelled by Atrium (what users may do is a role permission in the admin; texts live in templates)"
)


