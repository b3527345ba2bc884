"""Wire-protocol adapters and their registry (healthchecks' TRANSPORTS shape): the Endpoint's
`provider` field names the adapter that talks to it."""
from __future__ import annotations

from endpoints.adapters.base import Adapter
from endpoints.adapters.anthropic import AnthropicAdapter
from endpoints.adapters.openai_chat import OpenAIChatAdapter
from endpoints.adapters.openai_responses import OpenAIResponsesAdapter

ADAPTERS: dict[str, Adapter] = {
    adapter.protocol: adapter
    for adapter in (OpenAIChatAdapter(), AnthropicAdapter(), OpenAIResponsesAdapter())
}


def adapter_for(protocol: str) -> Adapter:
    try:
        return ADAPTERS[protocol]
    except KeyError:
        raise LookupError(f"No adapter for wire protocol {protocol!r} (known: {', '.join(ADAPTERS)}).") from None
