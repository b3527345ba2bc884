"""Wire-protocol adapters and their registry (healthchecks' TRANSPORTS shape): the Endpoint's
`provider` field names the adapter that talks to it.

ADAPTERS is the one list of protocols: the field's choices, the admin, the librechat.yaml import and
validation all read it (`protocol_choices`). A new protocol is a module with an `Adapter` subclass
and one line here.
"""
from __future__ import annotations

from endpoints.adapters.anthropic import AnthropicAdapter
from endpoints.adapters.azure_openai import AzureOpenAIAdapter
from endpoints.adapters.base import Adapter
from endpoints.adapters.openai_chat import OpenAIChatAdapter
from endpoints.adapters.openai_responses import OpenAIResponsesAdapter

ADAPTERS: dict[str, Adapter] = {
    adapter.protocol: adapter
    for adapter in (OpenAIChatAdapter(), AnthropicAdapter(), OpenAIResponsesAdapter(), AzureOpenAIAdapter())
}


def protocol_choices() -> list[tuple[str, str]]:
    """`Endpoint.provider`'s choices: each registered protocol and its label, in registry order."""
    return [(protocol, adapter.label) for protocol, adapter in ADAPTERS.items()]


def adapter_for(protocol: str) -> Adapter:
    try:
        return ADAPTERS[protocol]
    except KeyError:
        raise LookupError(f"No adapter for wire protocol {protocol!r} (known: {', '.join(ADAPTERS)}).") from None
