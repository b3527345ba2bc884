"""Channel-layer group names: where a conversation's frames go (every socket following it, on any
process, is in its group) and where a process's stop requests go; and the layer itself."""
from __future__ import annotations

import uuid

from channels.layers import BaseChannelLayer, get_channel_layer


def group_name(conversation_id: uuid.UUID | str) -> str:
    return f"chat.{conversation_id}"


def stop_group(process_id: str) -> str:
    return f"chatstop.{process_id}"


def channel_layer() -> BaseChannelLayer:
    """The configured channel layer (settings.CHANNEL_LAYERS always names one)."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS names no default layer")
    return layer
