"""Request/response schemas of the endpoints API: the model selector's data and provider keys."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ninja import Schema
from pydantic import Field


class CapabilitiesOut(Schema):
    tools: bool
    structured_output: bool
    json_mode: bool
    vision: bool
    reasoning: bool
    runs_locally: bool


class RatesOut(Schema):
    """USD per 1M tokens, which is credits per token (null: the portal's default rates apply)."""

    prompt: Decimal | None
    completion: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None


class ModelOut(Schema):
    name: str
    label: str
    context_tokens: int | None
    capabilities: CapabilitiesOut
    rates: RatesOut


class EndpointOut(Schema):
    id: int
    name: str
    kind: str
    icon_url: str
    display_label: str = Field(description="modelDisplayLabel: shown beside the model icon in messages.")
    user_provides_key: bool
    user_provides_base_url: bool
    models: list[ModelOut]
    params_endpoint: str = Field(
        description="customParams.defaultParamsEndpoint: which parameter set the UI offers (custom, anthropic, …)."
    )
    param_definitions: list[dict[str, Any]] = Field(
        description="customParams.paramDefinitions (key, type, component, default, range {min, max, step}, "
        "options, label, description, placeholder): the settings the parameters panel shows."
    )


class ModelSpecOut(Schema):
    name: str
    label: str
    description: str
    group: str
    group_icon: str
    icon_url: str
    is_default: bool
    endpoint: str
    endpoint_kind: str
    model: str
    params: dict[str, Any] = Field(description="The parameters the spec presets (temperature, top_p, max_tokens, …).")


class OfferOut(Schema):
    """Everything the model selector draws, in its order."""

    enforce: bool = Field(description="Chat only through model specs.")
    prioritize: bool = Field(description="The default spec wins over the last selection in a new chat.")
    free_choice: bool = Field(description="This role may pick an endpoint and model, not only a spec.")
    specs: list[ModelSpecOut]
    endpoints: list[EndpointOut]


class ProviderKeyIn(Schema):
    api_key: str = Field(default="", max_length=4000)
    base_url: str = Field(default="", max_length=2048)
    expires_at: datetime | None = None


class ProviderKeyOut(Schema):
    """That a key is stored (never the key itself)."""

    endpoint: str
    expires_at: datetime | None
    updated_at: datetime
