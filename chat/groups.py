"""Channel-layer group names: where a conversation's frames go (every socket following it, on any
process, is in its group) and where a process's stop requests go."""
from __future__ import annotations

import uuid


def group_name(conversation_id: uuid.UUID | str) -> str:
    return f"chat.{conversation_id}"


def stop_group(process_id: str) -> str:
    return f"chatstop.{process_id}"
