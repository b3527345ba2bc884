"""The OpenAI- and Anthropic-compatible gateway (/v1/), driven by the official `openai` and
`anthropic` SDKs against a real daphne, answered by the loopback upstream; every call checked in
the ledger against the usage the upstream reported."""
from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import anthropic
import openai
import pytest
from django.conf import settings

from accounts.services import api_key_create
from billing.models import Transaction
from billing.services import adjust_balance, ensure_balance
from endpoints.adapters.types import Usage
from tests.daphne import Daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

RATES = {"prompt_rate": Decimal("1"), "completion_rate": Decimal("2"), "cache_read_rate": Decimal("0.5"),
         "cache_write_rate": Decimal("1.25")}


@pytest.fixture(scope="module")
def shared_server(django_db_setup, django_db_blocker):
    """One daphne for the module when it shares Redis with the tests (configuration changes reach it)."""
    if not settings.REDIS_URL:
        yield None
        return
    daphne = Daphne(name="gateway").start()
    try:
        yield daphne
    finally:
        daphne.stop()


@pytest.fixture
def base(shared_server) -> Iterator[str]:
    """The gateway's root URL. On the embedded default a daphne keeps the configuration it read in
    its own memory (one process is the embedded default's rule): each test gets a fresh one."""
    if shared_server is not None:
        yield f"http://127.0.0.1:{shared_server.port}"
        return
    daphne = Daphne(name="gateway").start()
    try:
        yield f"http://127.0.0.1:{daphne.port}"
    finally:
        daphne.stop()


@pytest.fixture
def caller(chatter):
    role = chatter.role
    role.can_use_api = True
    role.save()
    return chatter


@pytest.fixture
def key(caller) -> str:
    return api_key_create(user=caller, name="sdk").key


@pytest.fixture
def oai(base, key):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


@pytest.fixture
def claude(base, key):
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


ASK = {"model": "test-model", "messages": [{"role": "user", "content": "Hi"}]}


def _gateway_rows(user):
    return {t.token_type: t for t in Transaction.objects.filter(user=user, context="gateway")}


def _assert_billed(user, usage: Usage) -> Decimal:
    rows = _gateway_rows(user)
    expected = {"prompt": usage.input_tokens, "completion": usage.output_tokens,
                "cache_read": usage.cache_read_tokens, "cache_write": usage.cache_write_tokens}
    assert {k: rows[k].tokens for k in rows} == {k: v for k, v in expected.items() if v}
    assert not any(t.estimated for t in rows.values())
    return -sum(t.credits for t in rows.values())


def _post(url: str, body: dict, key: str | None = None, **headers: str):
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    request = Request(url, data=json.dumps(body).encode(), method="POST",
                      headers={"Content-Type": "application/json", **auth, **headers})
    try:
        with urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


# --- OpenAI's SDK --------------------------------------------------------------------------------

def test_the_openai_sdk_gets_a_whole_answer_billed_exactly(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    usage = Usage(input_tokens=11, output_tokens=7, cache_read_tokens=3)
    upstream.reply(text="Hello from the lab.", usage=usage)

    raw = oai.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": "Hi"}], temperature=0.2,
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello from the lab."
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (14, 7)
    assert completion.usage.prompt_tokens_details.cached_tokens == 3
    cost = _assert_billed(caller, usage)
    assert Decimal(raw.headers["x-atrium-cost-credits"]) == cost == Decimal("11") + Decimal("14") + Decimal("1.5")
    assert raw.headers["x-request-id"]
    sent = upstream.completions()[-1].json
    assert sent["messages"] == [{"role": "user", "content": "Hi"}] and sent["temperature"] == 0.2


def test_the_openai_sdk_streams_with_usage_at_the_end(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    usage = Usage(input_tokens=9, output_tokens=4)
    upstream.reply(text="one two three four", usage=usage)

    stream = oai.chat.completions.create(
        model="Lab/test-model", messages=[{"role": "user", "content": "Count"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens == 9 and chunks[-1].usage.completion_tokens == 4
    _assert_billed(caller, usage)


def test_an_openai_client_reaches_an_anthropic_native_endpoint(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Claude", provider="anthropic", models=("claude-test",), rates=RATES)
    usage = Usage(input_tokens=20, output_tokens=6, cache_read_tokens=4, cache_write_tokens=2)
    upstream.reply(text="Bonjour from Claude.", usage=usage)
    upstream.reply(text="Streamed from Claude.", usage=usage)

    completion = oai.chat.completions.create(
        model="claude-test", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=50,
    )
    streamed = list(oai.chat.completions.create(
        model="claude-test", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True},
    ))

    assert completion.choices[0].message.content == "Bonjour from Claude."
    assert completion.usage.prompt_tokens == 26  # input + cache read + cache write, OpenAI's way
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Streamed from Claude."
    first = upstream.completions()[0]
    assert first.path.endswith("/v1/messages") and first.json["system"] == "Be brief."
    assert first.json["max_tokens"] == 50
    rows = Transaction.objects.filter(user=caller, context="gateway")
    assert sum(t.tokens for t in rows if t.token_type == "cache_write") == 4
    assert sum(t.tokens for t in rows if t.token_type == "prompt") == 40


def _billed(user) -> list[tuple[str, int]]:
    """The gateway's ledger rows as (token type, tokens), one per token type of each call."""
    return sorted((t.token_type, t.tokens) for t in Transaction.objects.filter(user=user, context="gateway"))


def _rows_of(*usages: Usage) -> list[tuple[str, int]]:
    rows = [(kind, tokens) for usage in usages for kind, tokens in (
        ("prompt", usage.input_tokens), ("completion", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens), ("cache_write", usage.cache_write_tokens),
    ) if tokens]
    return sorted(rows)


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def test_the_openai_sdk_runs_a_tool_loop_against_an_openai_endpoint(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    first, second = Usage(input_tokens=10, output_tokens=5), Usage(input_tokens=31, output_tokens=8)
    upstream.reply(text="", tool_calls=[{"id": "call_1", "name": "weather", "arguments": '{"city": "Oslo"}'}],
                   usage=first)
    upstream.reply(text="It is 4 °C in Oslo.", usage=second)
    messages = [{"role": "user", "content": "Weather in Oslo?"}]

    completion = oai.chat.completions.create(
        model="test-model", messages=messages, tools=[WEATHER], tool_choice="auto",
        response_format={"type": "json_object"},
    )
    call = completion.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_1", "weather", {"city": "Oslo"})
    assert completion.choices[0].finish_reason == "tool_calls"
    messages += [completion.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "4 °C"}]
    answer = oai.chat.completions.create(model="test-model", messages=messages, tools=[WEATHER])

    assert answer.choices[0].message.content == "It is 4 °C in Oslo."
    asked, followed = (r.json for r in upstream.completions())
    assert asked["tools"] == [WEATHER] and asked["tool_choice"] == "auto"
    assert asked["response_format"] == {"type": "json_object"}
    assert followed["messages"][1:] == [  # (the upstream checks the exchange as OpenAI does)
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4 °C"},
    ]
    assert _billed(caller) == _rows_of(first, second)


def test_the_anthropic_sdk_runs_a_tool_loop_against_an_anthropic_endpoint(claude, caller, chat_endpoint, upstream):
    chat_endpoint("Claude", provider="anthropic", models=("claude-test",), rates=RATES)
    first = Usage(input_tokens=12, output_tokens=9, cache_read_tokens=4)
    second = Usage(input_tokens=40, output_tokens=6, cache_write_tokens=3)
    upstream.reply(text="Let me look.", usage=first,
                   tool_calls=[{"id": "toolu_1", "name": "weather", "arguments": '{"city": "Oslo"}'}])
    upstream.reply(text="It is 4 °C in Oslo.", usage=second)
    tools = [{"name": "weather", "description": "Weather in a city", "input_schema": {"type": "object"}}]
    messages = [{"role": "user", "content": "Weather in Oslo?"}]

    with claude.messages.stream(model="claude-test", max_tokens=200, tools=tools, messages=messages) as stream:
        asked = stream.get_final_message()
    use = next(block for block in asked.content if block.type == "tool_use")
    assert (use.id, use.name, use.input, asked.stop_reason) == ("toolu_1", "weather", {"city": "Oslo"}, "tool_use")
    messages += [{"role": "assistant", "content": asked.content}, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "4 °C"}]},
        {"type": "text", "text": "And tomorrow?"},
    ]}]
    answer = claude.messages.create(model="claude-test", max_tokens=200, tools=tools, messages=messages)

    assert answer.content[0].text == "It is 4 °C in Oslo." and answer.stop_reason == "end_turn"
    followed = upstream.completions()[-1].json
    assert followed["messages"][1:] == [  # (the upstream checks the exchange as Anthropic does)
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4 °C"},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]
    assert followed["tools"] == tools
    assert _billed(caller) == _rows_of(first, second)


def test_an_openai_client_runs_a_tool_loop_against_an_anthropic_endpoint(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Claude", provider="anthropic", models=("claude-test",), rates=RATES)
    first, second = Usage(input_tokens=15, output_tokens=11), Usage(input_tokens=44, output_tokens=7)
    upstream.reply(text="", usage=first, tool_calls=[
        {"id": "toolu_a", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"id": "toolu_b", "name": "weather", "arguments": '{"city": "Rome"}'},
    ])
    upstream.reply(text="Rome is warmer.", usage=second)
    messages = [{"role": "user", "content": "Oslo or Rome: which is warmer?"}]

    completion = oai.chat.completions.create(model="claude-test", messages=messages, tools=[WEATHER],
                                             tool_choice="required")
    calls = completion.choices[0].message.tool_calls
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_a", {"city": "Oslo"}), ("toolu_b", {"city": "Rome"})]
    messages += [completion.choices[0].message,
                 {"role": "tool", "tool_call_id": "toolu_a", "content": "4 °C"},
                 {"role": "tool", "tool_call_id": "toolu_b", "content": "18 °C"}]
    chunks = list(oai.chat.completions.create(model="claude-test", messages=messages, tools=[WEATHER], stream=True,
                                              stream_options={"include_usage": True}))

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Rome is warmer."
    asked, followed = (r.json for r in upstream.completions())
    assert asked["tool_choice"] == {"type": "any"}
    assert asked["tools"] == [{"name": "weather", "description": "", "input_schema": {"type": "object"}}]
    assert followed["messages"][1:] == [  # both results in ONE user turn, as Anthropic requires
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "4 °C"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "18 °C"},
        ]},
    ]
    assert _billed(caller) == _rows_of(first, second)


# --- Anthropic's SDK -----------------------------------------------------------------------------

def test_the_anthropic_sdk_gets_a_whole_message_from_an_openai_endpoint(claude, caller, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    usage = Usage(input_tokens=12, output_tokens=5)
    upstream.reply(text="Hello, Claude client.", usage=usage)

    message = claude.messages.create(
        model="test-model", max_tokens=100, system="Be kind.", messages=[{"role": "user", "content": "Hi"}],
    )

    assert message.content[0].text == "Hello, Claude client." and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)
    sent = upstream.completions()[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."} and sent["max_tokens"] == 100
    _assert_billed(caller, usage)


def test_the_anthropic_sdk_streams_from_an_anthropic_endpoint(claude, caller, chat_endpoint, upstream):
    chat_endpoint("Claude", provider="anthropic", models=("claude-test",), rates=RATES)
    usage = Usage(input_tokens=15, output_tokens=3, cache_read_tokens=5)
    upstream.reply(text="a b c", usage=usage)

    with claude.messages.stream(model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "Go"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()

    assert text == "a b c" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3 and final.usage.cache_read_input_tokens == 5
    _assert_billed(caller, usage)


def test_anthropic_errors_come_in_anthropics_shape(claude, base, caller, chat_endpoint):
    chat_endpoint("Lab", rates=RATES)
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=base, api_key="atr_wrong", max_retries=0).messages.create(
            model="test-model", max_tokens=5, messages=[{"role": "user", "content": "Hi"}])


# --- models, names, refusals ---------------------------------------------------------------------

def test_models_lists_what_the_role_may_use_by_both_names(oai, caller, chat_endpoint, make_endpoint):
    chat_endpoint("Lab", models=("test-model", "shared"))
    chat_endpoint("Other", models=("shared",))
    hidden = make_endpoint("Hidden", models=("secret-model",))
    caller.role.allowed_endpoints.set([e for e in type(hidden).objects.exclude(pk=hidden.pk)])

    ids = [m.id for m in oai.models.list()]

    assert "test-model" in ids and "Lab/test-model" in ids and "Lab/shared" in ids and "Other/shared" in ids
    assert "shared" not in ids  # two endpoints offer it: only by endpoint/model
    assert not any("secret" in i for i in ids)


def test_an_ambiguous_model_name_is_refused_naming_the_choices(oai, chat_endpoint, upstream):
    chat_endpoint("Lab", models=("shared",))
    chat_endpoint("Other", models=("shared",))
    with pytest.raises(openai.BadRequestError, match="Lab/shared, Other/shared") as caught:
        oai.chat.completions.create(model="shared", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.code == "model_ambiguous"
    assert upstream.completions() == []


def test_portal_controlled_fields_are_refused(oai, chat_endpoint, upstream):
    chat_endpoint("Lab")
    with pytest.raises(openai.BadRequestError, match="user: set by Atrium"):
        oai.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "Hi"}], user="someone")
    assert upstream.completions() == []


def test_refusals_have_the_right_status_and_a_request_id(base, key, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    url = f"{base}/v1/chat/completions"

    status, headers, body = _post(url, ASK)
    assert status == 401 and body["error"]["type"] == "authentication_error" and headers["X-Request-Id"]
    status, headers, body = _post(url, {**ASK, "model": "nope"}, key)
    assert status == 404 and body["error"]["type"] == "invalid_request_error" and headers["X-Request-Id"]
    assert upstream.completions() == []


def test_a_caller_without_balance_gets_402_and_nothing_is_asked(base, key, caller, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    role = caller.role
    role.balance_enabled = True
    role.save()
    balance = ensure_balance(user=caller)
    adjust_balance(user=caller, credits=-balance.credits, reason="an empty balance", by=None)

    status, _, body = _post(f"{base}/v1/chat/completions", ASK, key)

    assert status == 402 and "balance" in body["error"]["message"].lower()
    assert upstream.completions() == []


def test_a_role_without_api_access_gets_403(base, key, caller, chat_endpoint, upstream):
    chat_endpoint("Lab")
    role = caller.role
    role.can_use_api = False
    role.save()

    status, _, body = _post(f"{base}/v1/chat/completions", ASK, key)

    assert status == 403 and body["error"]["type"] == "permission_error"
    assert upstream.completions() == []


def test_upstream_failures_become_502_and_its_rate_limit_a_429_with_retry_after(base, key, chat_endpoint, upstream):
    chat_endpoint("Lab", rates=RATES)
    ask = {"model": "test-model", "messages": [{"role": "user", "content": "Hi"}]}
    upstream.reply(status=500)
    upstream.reply(status=429, retry_after="7")

    unanswerable = {**ask, "messages": [*ask["messages"], {"role": "tool", "tool_call_id": "never", "content": "x"}]}

    failed = _post(f"{base}/v1/chat/completions", ask, key)
    limited = _post(f"{base}/v1/messages", {**ask, "max_tokens": 5}, key, **{"anthropic-version": "2023-06-01"})
    refused = _post(f"{base}/v1/chat/completions", unanswerable, key)  # a result for a call never made

    assert failed[0] == 502 and failed[2]["error"]["type"] == "api_error"
    assert limited[0] == 429 and limited[1]["Retry-After"] == "7" and limited[2]["type"] == "error"
    assert refused[0] == 502 and "role 'tool' must be a response" in refused[2]["error"]["message"]


# --- rate limits per role ------------------------------------------------------------------------

def _until_refused(oai, attempts: int):
    """Ask until refused with 429 (the windows are wall-clock minutes: a run that straddles the
    minute's end starts counting again once, so up to twice the limit may pass)."""
    for made in range(1, attempts + 1):
        try:
            oai.chat.completions.create(**ASK)
        except openai.RateLimitError as refused:
            return made, refused
    raise AssertionError(f"no 429 in {attempts} requests")


def test_a_roles_request_limit_answers_429_with_retry_after(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Lab")
    role = caller.role
    role.requests_per_minute = 2
    role.save()

    made, refused = _until_refused(oai, attempts=5)

    assert made in (3, 5)  # (5: the minute ended meanwhile)
    assert 1 <= int(refused.response.headers["retry-after"]) <= 60
    assert "2 requests per minute" in str(refused) and refused.response.headers["x-request-id"]
    assert len(upstream.completions()) == made - 1


def test_a_roles_token_limit_stops_the_calls_after_the_one_that_reached_it(oai, caller, chat_endpoint, upstream):
    chat_endpoint("Lab")
    role = caller.role
    role.tokens_per_minute = 30
    role.save()
    upstream.set_default(usage=Usage(input_tokens=20, output_tokens=15))  # 35 tokens a call

    made, refused = _until_refused(oai, attempts=3)

    assert made in (2, 3) and "30 tokens per minute" in str(refused)
    assert len(upstream.completions()) == made - 1


def test_a_client_that_leaves_mid_stream_is_billed_for_what_was_delivered(base, key, caller, chat_endpoint, upstream):
    import time

    import httpx

    chat_endpoint("Lab", rates=RATES)
    upstream.reply(text=" ".join(["word"] * 200), chunk_delay=0.02)

    with httpx.Client(base_url=base, timeout=10) as client, client.stream(
        "POST", "/v1/chat/completions", json={**ASK, "stream": True}, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        for line in response.iter_lines():
            if '"content":"word' in line:
                break  # and hang up

    assert upstream.wait_for_disconnects(1) == 1  # the gateway stopped asking the upstream
    deadline = time.monotonic() + 10
    while not (rows := _gateway_rows(caller)) and time.monotonic() < deadline:
        time.sleep(0.05)  # (the bill is written by the server process as the turn ends)
    assert rows["completion"].tokens >= 1 and rows["completion"].estimated
