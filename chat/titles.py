"""Conversation titles (LibreChat's titleConvo settings of the conversation's endpoint, SPEC §1.1).

`title_conversation` asks a model for a short title of the first exchange, stores it, pushes it to
the sockets following the conversation and bills the call (context "title"). It runs in the Celery
task `chat.tasks.generate_title`, enqueued by the chat turn at the start (`titleTiming: immediate`,
from the first user message) or at the end (`final`, from the first exchange) of a new conversation.

Where it asks: `titleEndpoint` when set, else the conversation's endpoint; `titleModel`, with
`current_model` meaning the conversation's model. When that call fails, the conversation's own
endpoint and model are tried once more. How: `titleMethod` `completion` reads the answer's text;
`structured` (and its legacy alias `functions`) offers a `set_title` tool and reads its argument.
The prompt is `titlePrompt` (or the built-in one) with `{convo}` filled from `titlePromptTemplate`
(`{input}` → the user's message, `{output}` → the answer), sent as a `titleMessageRole` message.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import uuid
from dataclasses import dataclass

from billing import services as billing
from billing.tokens import count_chat_tokens, count_tokens, estimated_usage
from chat.background import is_server_loop
from chat.db import on_db
from chat.groups import channel_layer, group_name
from chat.models import Conversation, Message
from chat.models import Role as MessageRole
from endpoints import http
from endpoints import services as endpoint_services
from endpoints.adapters.types import (
    ChatMessage,
    ChatRequest,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from endpoints.models import DEFAULT_TITLE_PROMPT_TEMPLATE, Endpoint, Protocol, TitleMethod, TitleTiming

log = logging.getLogger(__name__)

DEFAULT_TITLE_PROMPT = (
    "Write a concise title for this conversation: 5 words or fewer, in the conversation's language, "
    "in the title case that language uses, without quotes or final punctuation. Never mention the "
    "language or the word \"title\". Reply with the title only.\n\n{convo}"
)
CURRENT_MODEL = "current_model"
TITLE_MAX_TOKENS = 60
TITLE_MAX_CHARS = 120
INPUT_MAX_CHARS = 2000  # of each side of the exchange, so a long paste does not make titles expensive
TITLE_TOOL = {
    "type": "function",
    "function": {
        "name": "set_title",
        "description": "Set the title of the conversation.",
        "parameters": {
            "type": "object",
            "properties": {"title": {"type": "string", "description": "The title, 5 words or fewer."}},
            "required": ["title"],
        },
    },
}


@dataclass
class _Exchange:
    conversation: Conversation
    endpoint: Endpoint  # the conversation's endpoint: its title settings apply
    user_text: str
    answer_text: str


@dataclass
class _Attempt:
    endpoint: Endpoint
    model: str


def _load(conversation_id: uuid.UUID, timing: str) -> _Exchange | None:
    conversation = Conversation.objects.select_related("user__role", "endpoint__title_endpoint").filter(
        pk=conversation_id
    ).first()
    if conversation is None or conversation.endpoint is None or not conversation.endpoint.title_convo:
        return None
    messages = Message.objects.filter(conversation=conversation, user=conversation.user)
    first = messages.filter(role=MessageRole.USER).order_by("created_at").first()
    if first is None:
        return None
    answer = None
    if timing == TitleTiming.FINAL:  # immediate: from the first message alone, as it runs beside the answer
        answer = (
            messages.filter(role=MessageRole.ASSISTANT, parent=first).exclude(text="").order_by("created_at").first()
        )
    return _Exchange(
        conversation=conversation,
        endpoint=conversation.endpoint,
        user_text=first.text[:INPUT_MAX_CHARS],
        answer_text=answer.text[:INPUT_MAX_CHARS] if answer is not None else "",
    )


def attempts_for(exchange: _Exchange) -> list[_Attempt]:
    """titleEndpoint/titleModel first; the conversation's own endpoint and model as the fallback."""
    endpoint = exchange.endpoint
    conversation = exchange.conversation
    model = conversation.model if endpoint.title_model in ("", CURRENT_MODEL) else endpoint.title_model
    title_endpoint = (endpoint.title_endpoint if endpoint.title_endpoint_id else None) or endpoint
    if not title_endpoint.enabled:
        title_endpoint = endpoint
    first = _Attempt(endpoint=title_endpoint, model=model)
    fallback = _Attempt(endpoint=endpoint, model=conversation.model)
    if (first.endpoint.pk, first.model) == (fallback.endpoint.pk, fallback.model):
        return [first]
    return [first, fallback]


def title_request(exchange: _Exchange, attempt: _Attempt) -> ChatRequest:
    settings_from = exchange.endpoint
    template = settings_from.title_prompt_template or DEFAULT_TITLE_PROMPT_TEMPLATE
    # replace(), not format(): the user's text may contain braces.
    convo = template.replace("{input}", exchange.user_text).replace("{output}", exchange.answer_text)
    prompt = (settings_from.title_prompt or DEFAULT_TITLE_PROMPT).replace("{convo}", convo)
    role = settings_from.title_message_role or MessageRole.SYSTEM
    structured = settings_from.title_method in (TitleMethod.STRUCTURED, TitleMethod.FUNCTIONS)
    system = ""
    if role == MessageRole.SYSTEM and attempt.endpoint.provider == Protocol.ANTHROPIC:
        # Anthropic has no system messages: the prompt is the top-level system field, and the
        # conversation must start with a user turn.
        system, messages = prompt, [ChatMessage(role="user", content="Write the title now.")]
    else:
        messages = [ChatMessage(role=role, content=prompt)]
    if structured:
        messages.append(ChatMessage(role="user", content="Call set_title with the title."))
    return ChatRequest(
        model=attempt.model,
        messages=messages,
        system=system,
        params={"max_tokens": TITLE_MAX_TOKENS, "temperature": 0.2},
        tools=[TITLE_TOOL] if structured else None,
        conversation_id=str(exchange.conversation.pk),
    )


def clean_title(raw: str) -> str:
    title = raw.strip().splitlines()[0] if raw.strip() else ""
    title = re.sub(r"^(title|titel|titre|título)\s*[:：]\s*", "", title, flags=re.IGNORECASE)
    title = title.strip().strip("\"'“”‘’«»`*#").strip()
    title = re.sub(r"[.。!！]+$", "", title).strip()
    title = re.sub(r"\s+", " ", title)
    return title[:TITLE_MAX_CHARS]


def _title_from_tool(arguments: str) -> str:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return ""
    return str(value.get("title") or "") if isinstance(value, dict) else ""


async def _ask(exchange: _Exchange, attempt: _Attempt) -> tuple[str, str | None]:
    """One title call: (title, error). Billed whatever happens."""
    conversation = exchange.conversation
    user = conversation.user
    request = title_request(exchange, attempt)
    prompt_tokens = count_chat_tokens(request.messages, system=request.system, model=attempt.model)
    try:
        # The title's answer is bounded by its max_tokens: the hold covers all of it.
        hold = await on_db(billing.check_balance)(
            user=user, endpoint=attempt.endpoint, model=attempt.model, prompt_tokens=prompt_tokens,
            max_completion_tokens=TITLE_MAX_TOKENS,
        )
    except billing.InsufficientBalance as exc:
        return "", str(exc)
    text, arguments, usage, error = [], [], None, None
    try:
        async for event in endpoint_services.stream_chat(endpoint=attempt.endpoint, request=request, user=user):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                arguments.append(event.arguments)
            elif isinstance(event, UsageReport):
                usage = event.usage  # the usage so far
            elif isinstance(event, StreamError):
                error = event.message
    finally:
        received = "".join(text) + "".join(arguments)
        estimated: bool | frozenset[str] = usage is None and bool(received)
        if usage is None:
            usage = (
                estimated_usage(prompt_tokens=prompt_tokens, received_text=received, model=attempt.model)
                if received
                else Usage()
            )
        elif error is not None and received:
            # interrupted: at least what was delivered (the last report may predate most of it)
            delivered = count_tokens(received, attempt.model)
            if delivered > usage.output_tokens:
                usage, estimated = dataclasses.replace(usage, output_tokens=delivered), frozenset({"completion"})
        await on_db(billing.record_usage)(
            user=user, endpoint=attempt.endpoint, model=attempt.model, usage=usage, context="title",
            conversation=conversation, estimated=estimated, release=hold,
        )
    title = clean_title(_title_from_tool("".join(arguments)) or "".join(text))
    if not title and error is None:
        error = "the model returned no title"
    return title, error


def _save_title(conversation_id: uuid.UUID, title: str) -> None:
    # update(): do not bump updated_at, and do not overwrite other fields changed meanwhile.
    Conversation.objects.filter(pk=conversation_id).update(title=title)


async def title_conversation(conversation_id: uuid.UUID | str, timing: str = TitleTiming.FINAL) -> str | None:
    """Generate, store and push the title of a conversation; None when titles are off or all
    attempts failed (logged)."""
    try:
        exchange = await on_db(_load)(uuid.UUID(str(conversation_id)), timing)
        if exchange is None:
            return None
        for attempt in attempts_for(exchange):
            title, error = await _ask(exchange, attempt)
            if title:
                await on_db(_save_title)(exchange.conversation.pk, title)
                await channel_layer().group_send(
                    group_name(exchange.conversation.pk),
                    {"type": "chat.frame", "frame": {
                        "type": "title", "conversation_id": str(exchange.conversation.pk), "title": title,
                    }},
                )
                return title
            log.warning(
                "title for conversation %s from %s/%s failed: %s",
                exchange.conversation.pk, attempt.endpoint.name, attempt.model, error,
            )
        return None
    finally:
        if not is_server_loop():
            # A loop of its own (a Celery worker): close its HTTP client with it.
            await http.aclose()
