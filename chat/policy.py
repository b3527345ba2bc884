"""What a user may ask of a turn, read from a configuration snapshot (`chat.configcache`): the
endpoint, model and model spec (`resolve_target`), the request parameters (`clean_params`) and the
context sent upstream (`build_context`: the branch, trimmed to the model's window)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from accounts.models import User
from billing.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, count_tokens
from chat import configcache
from chat.errors import Forbidden, InvalidRequest, NotFound
from chat.models import Conversation
from chat.models import Role as MessageRole
from endpoints import services as endpoint_services
from endpoints.adapters.types import ChatMessage
from endpoints.models import Endpoint, EndpointModel, ModelSpec
from portal.models import PortalSettings

MAX_TEXT_CHARS = 200_000
# Parameters a user (or a model spec) may set on a request. Anything else could smuggle in body
# fields the portal controls (model, messages, stream, tools, user, …).
USER_PARAMS = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "max_tokens": (int,),
    "stop": (str, list),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "seed": (int,),
    "reasoning_effort": (str,),
}
RESERVED_PARAMS = {
    "model", "messages", "stream", "stream_options", "tools", "tool_choice", "functions", "user",
    "input", "system", "n", "prompt", "metadata",
}
REASONING_EFFORTS = {"minimal", "low", "medium", "high"}


@dataclass
class Target:
    """The endpoint, model and parameters a turn will use, already permission-checked."""

    endpoint: Endpoint
    model: str
    spec: ModelSpec | None
    params: dict[str, Any]
    system_prompt: str
    model_row: EndpointModel | None

    @property
    def sender(self) -> str:
        """modelDisplayLabel order: the spec's label, the model's label, the endpoint's label."""
        if self.spec is not None:
            return self.spec.label or self.spec.name
        if self.model_row is not None and self.model_row.label:
            return self.model_row.label
        return self.endpoint.model_display_label or "AI"


class Said(Protocol):
    """A message of the branch as the context needs it: a row, or the new message (a Draft)."""

    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Draft:
    """The new user message as the context needs it (its row is built later, by build_turn)."""

    role: str
    text: str



def role_allows_endpoint(user: User, endpoint: Endpoint, snap: configcache.Snapshot) -> bool:
    """A role with no endpoints selected may use all of them."""
    ids = snap.get(
        ("role-endpoints", user.role_id),
        lambda: set(user.role.allowed_endpoints.values_list("pk", flat=True)) if user.role is not None else set(),
    )
    return not ids or endpoint.pk in ids


def _role_allows_spec(user: User, spec: ModelSpec, snap: configcache.Snapshot) -> bool:
    """A role with no model specs selected may use all of them."""
    ids = snap.get(
        ("role-specs", user.role_id),
        lambda: set(user.role.allowed_model_specs.values_list("pk", flat=True)) if user.role is not None else set(),
    )
    return not ids or spec.pk in ids


def clean_params(params: dict[str, Any] | None, *, endpoint: Endpoint) -> dict[str, Any]:
    """The request parameters a user may set, checked; a clear error names what is wrong."""
    if not params:
        return {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object of parameter → value.")
    declared = {
        d.get("key")
        for d in (endpoint.custom_params or {}).get("paramDefinitions") or []
        if isinstance(d, dict) and d.get("key")
    }
    for key, value in params.items():
        _check_param(key, value, declared)
    return dict(params)


def _check_param(key: str, value: Any, declared: set[Any]) -> None:
    """Parameters the endpoint declares (paramDefinitions) pass as they are; the known ones are
    checked by type and range."""
    if key in RESERVED_PARAMS:
        raise InvalidRequest(f"The parameter '{key}' is set by Atrium and cannot be changed.")
    kinds = USER_PARAMS.get(key)
    if kinds is None:
        if key in declared:
            return
        known = ", ".join(sorted(set(USER_PARAMS) | declared))
        raise InvalidRequest(f"Unknown parameter '{key}' (allowed: {known}).")
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidRequest(f"The parameter '{key}' has the wrong type ({type(value).__name__}).")
    if key == "max_tokens" and isinstance(value, int) and value < 1:
        raise InvalidRequest("max_tokens must be at least 1.")
    if key == "reasoning_effort" and value not in REASONING_EFFORTS:
        raise InvalidRequest(f"reasoning_effort must be one of {', '.join(sorted(REASONING_EFFORTS))}.")
    if key == "stop" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise InvalidRequest("stop must be a string or a list of strings.")


def _find_endpoint(ref: str | int | Endpoint | None, snap: configcache.Snapshot) -> Endpoint | None:
    if ref is None or isinstance(ref, Endpoint):
        return ref
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return snap.get(("endpoint-id", int(ref)), lambda: Endpoint.objects.filter(pk=int(ref)).first())
    name = str(ref).strip()
    return snap.get(("endpoint-name", name.lower()), lambda: Endpoint.objects.filter(name__iexact=name).first())


def _model_row(endpoint: Endpoint, model: str, snap: configcache.Snapshot) -> EndpointModel | None:
    return snap.get(
        ("model-row", endpoint.pk, model), lambda: EndpointModel.objects.filter(endpoint=endpoint, name=model).first()
    )


def listed_models(endpoint: Endpoint, snap: configcache.Snapshot) -> list[str]:
    return snap.get(("listed-models", endpoint.pk), endpoint.listed_model_names)


def _portal(snap: configcache.Snapshot) -> PortalSettings:
    return snap.get("portal-settings", PortalSettings.load)


def resolve_target(
    *,
    user: User,
    endpoint: str | int | Endpoint | None = None,
    model: str | None = None,
    spec: str | ModelSpec | None = None,
    params: dict[str, Any] | None = None,
    system_prompt: str | None = None,
    conversation: Conversation | None = None,
    snap: configcache.Snapshot | None = None,
) -> tuple[Target, bool]:
    """The endpoint/model/spec a request will use, after every permission check.

    Nothing chosen keeps the conversation's spec or endpoint and model (checked again); nothing
    chosen in a new conversation uses the default model spec. Returns the target and whether the
    model must still be checked against the endpoint's fetched model list (endpoints with
    models.fetch; `check_fetched_model` does that, asynchronously).
    """
    snap = snap or configcache.snapshot()
    role = user.role
    if role is None or not role.can_chat:
        raise Forbidden("Your role does not allow chatting. Ask an administrator for access.")
    if spec is None and endpoint is None and model is None and conversation is not None:
        spec, endpoint, model = _conversation_choice(conversation)
    chosen = _find_spec(spec, snap) if spec is not None else None
    if chosen is None and endpoint is None and model is None:
        chosen = _default_spec(user, snap)
    if chosen is not None:
        return _spec_target(user, chosen, params, snap), False
    return _free_target(
        user, endpoint, model, params=params, system_prompt=system_prompt, conversation=conversation, snap=snap
    )


def _conversation_choice(conversation: Conversation) -> tuple[ModelSpec | None, Endpoint | None, str | None]:
    if conversation.model_spec_id:
        return conversation.model_spec, None, None
    if conversation.endpoint_id:
        return None, conversation.endpoint, conversation.model
    raise InvalidRequest("This conversation has no endpoint any more; choose an endpoint and model.")


def _find_spec(spec: str | ModelSpec, snap: configcache.Snapshot) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    name = str(spec)
    found = snap.get(("spec", name), lambda: ModelSpec.objects.select_related("endpoint").filter(name=name).first())
    if found is None:
        raise NotFound(f"There is no model spec named '{spec}'.")
    return found


def _default_spec(user: User, snap: configcache.Snapshot) -> ModelSpec:
    default = snap.get(
        "default-spec",
        lambda: ModelSpec.objects.select_related("endpoint").filter(is_default=True, enabled=True).first(),
    )
    if default is None or not _role_allows_spec(user, default, snap):
        raise InvalidRequest("Choose an endpoint and a model (or a model spec) for this conversation.")
    return default


def _spec_target(user: User, spec: ModelSpec, params: dict[str, Any] | None, snap: configcache.Snapshot) -> Target:
    if not spec.enabled or not _role_allows_spec(user, spec, snap):
        raise Forbidden(f"You may not use the model spec '{spec.label or spec.name}'.")
    endpoint = spec.endpoint
    if not endpoint.enabled:
        raise Forbidden(f"The endpoint '{endpoint.name}' of this model spec is switched off.")
    # With specs enforced, the spec's parameters are the ones used; otherwise a user may tune them.
    user_params = {} if _portal(snap).model_specs_enforce else clean_params(params, endpoint=endpoint)
    return Target(
        endpoint=endpoint,
        model=spec.model,
        spec=spec,
        params={**spec.preset_params(), **user_params},
        system_prompt=spec.system_prompt,
        model_row=_model_row(endpoint, spec.model, snap),
    )


def _free_target(
    user: User, endpoint: str | int | Endpoint | None, model: str | None, *, params: dict[str, Any] | None,
    system_prompt: str | None, conversation: Conversation | None, snap: configcache.Snapshot,
) -> tuple[Target, bool]:
    """A free choice of endpoint and model (no spec)."""
    if _portal(snap).model_specs_enforce:
        raise Forbidden("Only model specs may be used on this portal; pick one of the model specs.")
    assert user.role is not None  # (resolve_target checked it)
    if not user.role.can_choose_models:
        raise Forbidden("Your role may only use model specs; pick one of the model specs.")
    chosen = _allowed_endpoint(user, endpoint, conversation, snap)
    listed = listed_models(chosen, snap)
    model = model or _default_model(chosen, conversation, listed)
    needs_fetch_check = False
    if model not in listed:
        if not chosen.models_fetch:
            raise NotFound(
                f"The endpoint '{chosen.name}' has no model '{model}'"
                + (f" (available: {', '.join(listed)})." if listed else ".")
            )
        needs_fetch_check = True
    # Parameters and system prompt not given: the conversation's, while it stays on this endpoint.
    kept = conversation is not None and conversation.endpoint_id == chosen.pk and not conversation.model_spec_id
    base_params = dict(conversation.params) if kept and params is None and conversation is not None else {}
    if system_prompt is None:
        system_prompt = conversation.system_prompt if conversation is not None else ""
    target = Target(
        endpoint=chosen,
        model=model,
        spec=None,
        params={**clean_params(base_params, endpoint=chosen), **clean_params(params, endpoint=chosen)},
        system_prompt=system_prompt,
        model_row=_model_row(chosen, model, snap),
    )
    return target, needs_fetch_check


def _allowed_endpoint(
    user: User, ref: str | int | Endpoint | None, conversation: Conversation | None, snap: configcache.Snapshot
) -> Endpoint:
    if ref is None:
        if conversation is None or not conversation.endpoint_id:
            raise InvalidRequest("Choose an endpoint for this conversation.")
        ref = conversation.endpoint
    endpoint = _find_endpoint(ref, snap)
    if endpoint is None:
        raise NotFound(f"There is no endpoint '{ref}'.")
    if not endpoint.enabled:
        raise Forbidden(f"The endpoint '{endpoint.name}' is switched off.")
    if not role_allows_endpoint(user, endpoint, snap):
        raise Forbidden(f"Your role may not use the endpoint '{endpoint.name}'.")
    return endpoint


def _default_model(endpoint: Endpoint, conversation: Conversation | None, listed: list[str]) -> str:
    """The conversation's model while it stays on this endpoint, else the endpoint's first."""
    if conversation is not None and conversation.endpoint_id == endpoint.pk and conversation.model:
        return conversation.model
    if listed:
        return listed[0]
    raise InvalidRequest(f"Choose a model of the endpoint '{endpoint.name}'.")


async def check_fetched_model(*, user: User, target: Target) -> None:
    """For endpoints with models.fetch: the model must be one the endpoint lists (cached)."""
    names = await endpoint_services.list_models(endpoint=target.endpoint, user=user)
    if target.model not in names:
        raise NotFound(f"The endpoint '{target.endpoint.name}' has no model '{target.model}'.")


# --- context: the branch the answer continues, trimmed to the model's window ---------------------

def context_window(target: Target, snap: configcache.Snapshot | None = None) -> int:
    if target.model_row is not None and target.model_row.context_tokens:
        return target.model_row.context_tokens
    return _portal(snap or configcache.snapshot()).default_context_tokens


def reserved_for_answer(target: Target, window: int) -> int:
    """Room left for the answer: max_tokens when set, else a tenth of the window."""
    max_tokens = target.params.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        return min(max_tokens, window // 2)
    return window // 10


def build_context(
    branch: Iterable[Said], *, target: Target, snap: configcache.Snapshot | None = None
) -> tuple[list[ChatMessage], int]:
    """Chat messages from the root to the newest, dropping the oldest until they fit the window.

    Returns the messages and their prompt token count (system prompt included). Raises
    InvalidRequest when even the newest message does not fit.
    """
    model = target.model
    window = context_window(target, snap)
    budget = window - reserved_for_answer(target, window)
    system_tokens = count_tokens(target.system_prompt, model) + TOKENS_PER_MESSAGE if target.system_prompt else 0
    budget -= system_tokens + TOKENS_PER_REPLY
    usable = [m for m in branch if m.text and m.role in (MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM)]
    kept: list[tuple[Said, int]] = []
    used = 0
    for message in reversed(usable):
        cost = count_tokens(message.text, model) + TOKENS_PER_MESSAGE
        if used + cost > budget:
            if not kept:
                raise InvalidRequest(
                    f"The message is too long for {model}: about {cost} tokens, and the model's context "
                    f"window leaves room for {max(budget, 0)}. Shorten it or pick a model with a larger context."
                )
            break
        kept.append((message, cost))
        used += cost
    kept.reverse()
    # Providers want the conversation to start with a user turn.
    while len(kept) > 1 and kept[0][0].role != MessageRole.USER:
        used -= kept.pop(0)[1]
    # The same count as billing.tokens.count_chat_tokens, without tokenizing the branch twice.
    return [ChatMessage(role=m.role, content=m.text) for m, _ in kept], used + system_tokens + TOKENS_PER_REPLY
