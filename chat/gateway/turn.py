"""A gateway call as a chat turn: model names resolved for the caller's role, then the same
permission checks, admission and ledger as chat (`chat.services`), on a turn with no conversation.

A gateway call is stateless — the caller sends the whole message list — so its turn takes the
given messages as its context, as they are (no trimming: the caller chose them), and saves
nothing but its bill (`Turn.stateless`, ledger context `gateway`).

Model names: `endpoint/model` always names that endpoint's model (the endpoint's name,
case-insensitive); a bare `model` names the one allowed endpoint that lists it. A bare name that
several allowed endpoints list is refused (`Ambiguous`), naming the `endpoint/model` choices.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from accounts.models import User
from billing.pricing import Rates
from billing.tokens import count_chat_tokens
from chat import configcache
from chat.db import on_db
from chat.errors import Forbidden, InvalidRequest, NotFound
from chat.planning import check_target_balance, rates_of
from chat.policy import check_fetched_model, listed_models, resolve_target, role_allows_endpoint
from chat.turns import Operation, Turn
from endpoints.adapters.types import ChatMessage, ChatRequest
from endpoints.models import Endpoint


class Ambiguous(InvalidRequest):
    code = "model_ambiguous"


@dataclass
class GatewayAsk:
    """A gateway request, provider-neutral (what openai_format / anthropic_format parse)."""

    model: str
    messages: list[ChatMessage]
    system: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # sampling parameters: checked as chat's
    passthrough: dict[str, Any] = field(default_factory=dict)  # tool_choice, response_format, …: as given
    tools: list[dict[str, Any]] | None = None  # OpenAI function tools (adapters convert them)


def _enabled_endpoints(snap: configcache.Snapshot) -> list[Endpoint]:
    return snap.get("gateway-endpoints", lambda: list(Endpoint.objects.filter(enabled=True).order_by("ordering", "pk")))


def allowed_models(user: User, snap: configcache.Snapshot | None = None) -> list[tuple[Endpoint, str]]:
    """Every (endpoint, model) the user's role may call, in the selector's order."""
    snap = snap or configcache.snapshot()
    role = user.role
    if role is None or not role.can_chat or not role.can_choose_models:
        return []
    return [
        (endpoint, model)
        for endpoint in _enabled_endpoints(snap)
        if role_allows_endpoint(user, endpoint, snap)
        for model in listed_models(endpoint, snap)
    ]


def resolve_model(user: User, name: str, snap: configcache.Snapshot) -> tuple[Endpoint, str]:
    """The endpoint and model a gateway `model` names (see module doc). Raises NotFound or Ambiguous."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest("model is required.")
    allowed = [e for e in _enabled_endpoints(snap) if role_allows_endpoint(user, e, snap)]
    prefix, _, rest = name.partition("/")
    if rest:
        for endpoint in allowed:
            if endpoint.name.lower() == prefix.lower():
                return endpoint, rest  # (resolve_target checks the model is the endpoint's)
    offering = [e for e in allowed if name in listed_models(e, snap)]
    if len(offering) == 1:
        return offering[0], name
    if offering:
        choices = ", ".join(f"{e.name}/{name}" for e in offering)
        raise Ambiguous(f"Several endpoints offer the model '{name}'; name one of: {choices}.")
    raise NotFound(f"The model '{name}' does not exist or you do not have access to it.")


def _plan(user: User, ask: GatewayAsk, snap: configcache.Snapshot) -> tuple[User, Any, int, bool]:
    """Everything that only reads (on a database thread): the caller as the database has it now,
    the checked target and the prompt's token count."""
    user_pk = user.pk
    fresh = snap.get(
        ("user", user_pk), lambda: User.objects.select_related("role").filter(pk=user_pk, is_active=True).first()
    )
    if fresh is None:
        raise Forbidden("Your account is disabled.")
    endpoint, model = resolve_model(fresh, ask.model, snap)
    target, needs_fetch_check = resolve_target(
        user=fresh, endpoint=endpoint, model=model, params=ask.params, system_prompt=ask.system, snap=snap
    )
    target.params = {**target.params, **ask.passthrough}
    if "tool_choice" in target.params and endpoint.provider == "anthropic":
        target.params["tool_choice"] = anthropic_tool_choice(target.params["tool_choice"])
    prompt_tokens = count_chat_tokens(ask.messages, system=ask.system, model=model)
    return fresh, target, prompt_tokens, needs_fetch_check


def anthropic_tool_choice(choice: Any) -> Any:
    """OpenAI's tool_choice (the neutral form) in Anthropic's words."""
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(choice, choice)


def _admit(
    user: User, ask: GatewayAsk, target: Any, prompt_tokens: int, snap: configcache.Snapshot
) -> tuple[Turn, Rates]:
    rates = rates_of(target.endpoint, target.model, snap)
    hold, answer_limit = check_target_balance(user=user, target=target, prompt_tokens=prompt_tokens, snap=snap)
    params = dict(target.params, max_tokens=answer_limit) if answer_limit else dict(target.params)
    request = ChatRequest(
        model=target.model, messages=ask.messages, system=ask.system, params=params, tools=ask.tools or None,
    )
    turn = Turn(
        user=user,
        op=Operation.SEND,
        conversation_id=uuid.uuid4(),
        assistant_message_id=uuid.uuid4(),
        build_rows=_no_rows,
        shown={},
        target=target,
        request=request,
        prompt_tokens=prompt_tokens,
        new_conversation=False,
        generation_id=uuid.uuid4().hex,
        hold=hold,
        stateless=True,
        metered=True,  # (a personal API key's call)
    )
    return turn, rates


def _no_rows() -> Any:
    raise RuntimeError("a gateway turn has no conversation rows")


async def prepare_gateway_turn(*, user: User, ask: GatewayAsk) -> tuple[Turn, Rates]:
    """Check and admit a gateway call; raises ChatError (its `code` says which) before anything is
    sent upstream or held. Start it with `chat.run.TurnRun(turn)`. Also returns the rates the
    call is billed at (for its cost header)."""
    if not ask.messages:
        raise InvalidRequest("messages must contain at least one message.")
    # Follow the configuration's announcements (as chat.live does for answers): the version check
    # then costs no Redis round trip per call.
    configcache.listener.ensure()
    snap = await configcache.asnapshot()
    planned = await on_db(_plan_and_admit)(user, ask, snap)
    if isinstance(planned[0], Turn):
        return planned
    fresh, target, prompt_tokens = planned
    await check_fetched_model(user=fresh, target=target)
    return await on_db(_admit)(fresh, ask, target, prompt_tokens, snap)


def _plan_and_admit(user: User, ask: GatewayAsk, snap: configcache.Snapshot) -> tuple[Any, ...]:
    """_plan and, unless a fetched model list must be checked first (asynchronously), _admit: one
    trip to a database thread on the way to the upstream, not two."""
    fresh, target, prompt_tokens, needs_fetch_check = _plan(user, ask, snap)
    if needs_fetch_check:
        return fresh, target, prompt_tokens
    return _admit(fresh, ask, target, prompt_tokens, snap)
