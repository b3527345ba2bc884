"""The gateway's HTTP side: personal API key, rate limit, request id and cost headers, errors in
the caller's format. The work is a chat turn (chat.gateway.turn, chat.run.TurnRun)."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from accounts.services import api_key_authenticate
from billing.pricing import Rates, price, total
from chat.db import on_db
from chat.errors import ChatError
from chat.finish import Done
from chat.gateway import anthropic_format, openai_format
from chat.gateway.answer import CONTENT, Answer
from chat.gateway.errors import GatewayError
from chat.gateway.turn import allowed_models, prepare_gateway_turn
from chat.run import TurnRun
from chat.turns import Turn
from portal.ratelimit import RateLimited, acheck_request

COST_HEADER = "X-Atrium-Cost-Credits"


class _Call:
    """One gateway request: its id, caller and format."""

    def __init__(self, request: HttpRequest, anthropic: bool) -> None:
        self.request = request
        self.anthropic = anthropic
        self.rid = uuid.uuid4().hex

    def respond(self, response: HttpResponseBase) -> HttpResponseBase:
        response["X-Request-Id"] = self.rid
        response["Request-Id"] = self.rid  # (the anthropic SDK's name for it)
        return response

    def error(self, exc: GatewayError) -> HttpResponseBase:
        body = exc.anthropic_body() if self.anthropic else exc.openai_body()
        response = JsonResponse(body, status=exc.status)
        for name, value in exc.headers.items():
            response[name] = value
        return self.respond(response)

    async def user(self) -> Any:
        """The key's owner (401 / 403 / 429 as GatewayError). Anthropic clients send x-api-key."""
        header = self.request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else self.request.headers.get("X-Api-Key", "")
        api_key = await on_db(api_key_authenticate)(token.strip()) if token else None
        if api_key is None:
            raise GatewayError(401, "Invalid, revoked or expired API key.", code="invalid_api_key")
        user = api_key.user
        if user.role is None or not user.role.can_use_api:
            raise GatewayError(403, "Your role does not include API access.", code="forbidden")
        try:
            await acheck_request(user)
        except RateLimited as exc:
            raise GatewayError(429, str(exc), code="rate_limited", retry_after=exc.retry_after) from None
        return user

    def body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise GatewayError(400, "The request body is not valid JSON.", code="invalid_json") from None
        if not isinstance(body, dict):
            raise GatewayError(400, "The request body must be a JSON object.", code="invalid_json")
        return body


def _cost(rates: Rates, answer: Answer) -> Decimal:
    """The call's cost in credits, as the ledger prices it (same rates, same formula)."""
    return total(price(answer.usage, rates))


async def _first_content(run: TurnRun, answer: Answer) -> AsyncIterator[Any]:
    """The turn's events from the first content event on, after everything before it has been
    read into `answer` (so an answer that fails before any output is known as such)."""
    iterator = aiter(run)
    pending: list[Any] = []
    async for event in iterator:
        if isinstance(event, CONTENT) or isinstance(event, Done):
            pending.append(event)
            break
        answer.add(event)

    async def rest() -> AsyncIterator[Any]:
        for event in pending:
            yield event
        if not (pending and isinstance(pending[0], Done)):
            async for event in iterator:
                yield event

    return rest()


async def _serve(request: HttpRequest, *, anthropic: bool) -> HttpResponseBase:
    call = _Call(request, anthropic)
    if request.method != "POST":
        return call.error(GatewayError(405, "Use POST.", code="method_not_allowed"))
    try:
        user = await call.user()
        body = call.body()
        if anthropic:
            ask, streaming = anthropic_format.parse(body)
            include_usage = True
        else:
            ask, streaming, include_usage = openai_format.parse(body)
        turn, rates = await prepare_gateway_turn(user=user, ask=ask)
    except GatewayError as exc:
        return call.error(exc)
    except ChatError as exc:
        return call.error(GatewayError.from_chat(exc))
    model = ask.model
    run = TurnRun(turn)
    answer = Answer()
    events = await _first_content(run, answer)
    if streaming:
        return await _streamed(call, turn, rates, events, answer, model=model, include_usage=include_usage)
    async for event in events:
        answer.add(event)
    if answer.error is not None and not answer.has_output:
        response = call.error(GatewayError.from_stream(answer.error))
    else:
        fmt = anthropic_format if anthropic else openai_format
        response = call.respond(JsonResponse(fmt.whole(answer, rid=call.rid, model=model)))
    response[COST_HEADER] = str(_cost(rates, answer))
    return response


async def _streamed(
    call: _Call, turn: Turn, rates: Rates, events: AsyncIterator[Any], answer: Answer, *, model: str,
    include_usage: bool,
) -> HttpResponseBase:
    peeked = [event async for event in _peek_done(events)]
    if peeked and isinstance(peeked[0], Done):  # ended before any output: a plain response
        answer.add(peeked[0])
        if answer.error is not None:
            response = call.error(GatewayError.from_stream(answer.error))
            response[COST_HEADER] = str(_cost(rates, answer))
            return response

    async def replay() -> AsyncIterator[Any]:
        for event in peeked:
            yield event
        async for event in events:
            yield event

    def cost() -> Decimal:
        return _cost(rates, answer)

    if call.anthropic:
        chunks = anthropic_format.stream(replay(), answer, rid=call.rid, model=model,
                                         prompt_tokens=turn.prompt_tokens, cost=cost)
    else:
        chunks = openai_format.stream(replay(), answer, rid=call.rid, model=model,
                                      include_usage=include_usage, cost=cost)
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return call.respond(response)


async def _peek_done(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The first event only when it is Done (the turn ended without output); else nothing."""
    first = await anext(events, None)
    if first is not None:
        yield first


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    return await _serve(request, anthropic=False)


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponseBase:
    return await _serve(request, anthropic=True)


async def models(request: HttpRequest) -> HttpResponseBase:
    """`GET /v1/models`: every `endpoint/model` the caller may use, and each bare model name that
    exactly one allowed endpoint lists (the naming rule of chat.gateway.turn)."""
    call = _Call(request, anthropic="anthropic-version" in request.headers)
    try:
        user = await call.user()
    except GatewayError as exc:
        return call.error(exc)
    pairs = await on_db(_models_of)(user)
    created = int(time.time())
    data = [{"id": name, "object": "model", "created": created, "owned_by": owner,
             "type": "model", "display_name": name, "created_at": "1970-01-01T00:00:00Z"} for name, owner in pairs]
    return call.respond(JsonResponse({"object": "list", "data": data, "has_more": False,
                                      "first_id": data[0]["id"] if data else None,
                                      "last_id": data[-1]["id"] if data else None}))


def _models_of(user: Any) -> list[tuple[str, str]]:
    pairs = allowed_models(user)
    counts: dict[str, int] = {}
    for _endpoint, model in pairs:
        counts[model] = counts.get(model, 0) + 1
    named = [(f"{endpoint.name}/{model}", endpoint.name) for endpoint, model in pairs]
    bare = [(model, endpoint.name) for endpoint, model in pairs if counts[model] == 1]
    return bare + named

