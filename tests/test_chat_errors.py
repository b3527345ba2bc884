"""Every upstream failure, through the websocket: a clear error frame, then `done`; the conversation
keeps the partial answer with its error; the ledger holds the usage that was reported (or, when the
provider reported none but did answer, an estimate marked as such); nothing crashes."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from billing.models import Transaction
from billing.tokens import count_tokens
from chat.models import Message
from endpoints.adapters.types import Usage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

STREAM_PROTOCOLS = ["openai_chat", "anthropic", "openai_responses"]


def _answer_and_ledger(message_id):
    message = Message.objects.get(pk=message_id)
    rows = {(t.token_type, t.tokens, t.context, t.estimated) for t in Transaction.objects.filter(message=message)}
    return message, rows


async def _ask(chat_socket, endpoint):
    socket = await chat_socket()
    answer = await socket.ask("Please answer", endpoint=endpoint.name, model="test-model")
    assert [f["type"] for f in answer.frames][0] == "created"
    assert [f["type"] for f in answer.frames][-3:] == ["error", "usage", "done"]
    error = answer.errors[0]
    assert answer.done["unfinished"] is True and answer.done["finish_reason"] == "error"
    assert answer.done["error"] == error["message"]
    message, rows = await sync_to_async(_answer_and_ledger)(answer.message_id)
    assert message.unfinished and message.error == error["message"] and message.finish_reason == "error"
    assert message.text == answer.text  # the partial answer, as streamed, is kept
    # the socket is still usable
    await socket.send(type="ping")
    assert (await socket.receive())["type"] == "pong"
    return answer, error, message, rows


@pytest.mark.parametrize(
    "status, script, kind, words",
    [
        (401, {}, "auth", "rejected the API key (HTTP 401)"),
        (403, {}, "auth", "refused access"),
        (404, {}, "not_found", "does not know the model 'test-model' (HTTP 404)"),
        (429, {"retry_after": "7"}, "rate_limit", "Retry after 7 seconds."),
        (500, {}, "server", "had a server error (HTTP 500)"),
        (503, {}, "server", "had a server error (HTTP 503)"),
    ],
)
async def test_an_http_error_is_a_clear_message_and_costs_nothing(
    status, script, kind, words, chat_socket, chat_endpoint, upstream
):
    endpoint = await sync_to_async(chat_endpoint)("Acme AI")
    upstream.reply(status=status, **script)

    answer, error, message, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == kind and error["status"] == status and words in error["message"]
    if status == 429:
        assert error["retry_after"] == 7
    assert message.text == "" and rows == set()  # refused before any work: nothing to bill


async def test_connection_refused(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Down", base_url=upstream.refused_url())

    _, error, _, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "connect" and error["message"] == "Could not connect to Down (connection refused)."
    assert rows == set()


async def test_connect_timeout(chat_socket, chat_endpoint, upstream, settings):
    settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
    endpoint = await sync_to_async(chat_endpoint)("Slow", base_url=upstream.unreachable_url())

    _, error, _, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "timeout" and error["message"] == "Connecting to Slow timed out after 0.3 seconds."
    assert rows == set()


async def test_read_timeout_before_the_answer(chat_socket, chat_endpoint, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    endpoint = await sync_to_async(chat_endpoint)("Acme AI")
    upstream.reply(delay=3)

    _, error, message, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "timeout" and "before answering" in error["message"]
    assert message.text == "" and rows == set()


@pytest.mark.parametrize("protocol", STREAM_PROTOCOLS)
async def test_read_timeout_mid_stream_keeps_and_bills_the_partial_answer(
    protocol, chat_socket, chat_endpoint, upstream, settings
):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    endpoint = await sync_to_async(chat_endpoint)("Acme AI", provider=protocol)
    upstream.reply(text="one two three four", stall_after=2, stall=3)

    answer, error, message, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "timeout" and "during the answer" in error["message"]
    assert message.text == "one two "
    assert rows and all(context == "abort" for _, _, context, _ in rows)
    assert "completion" in {t for t, *_ in rows}


@pytest.mark.parametrize("protocol", STREAM_PROTOCOLS)
async def test_a_stream_cut_mid_way_keeps_the_text_and_bills_an_estimate(
    protocol, chat_socket, chat_endpoint, upstream
):
    endpoint = await sync_to_async(chat_endpoint)("Acme AI", provider=protocol)
    upstream.reply(text="alpha beta gamma delta", cut_after=2, usage=Usage(input_tokens=30, output_tokens=9))

    answer, error, message, rows = await _ask(chat_socket, endpoint)

    assert (
        error["code"] == "cut" and error["message"] == "The connection to Acme AI was cut before the answer finished."
    )
    assert message.text == "alpha beta "
    if protocol == "anthropic":
        # Anthropic reports the prompt at message_start, and output so far: billed as reported.
        assert ("prompt", 30, "abort", False) in rows
        # its output so far (1 at message_start) is less than what was delivered: that is billed
        assert ("completion", count_tokens("alpha beta "), "abort", True) in rows
    else:
        # No usage arrived: the prompt and the received text are estimated with the tokenizer.
        assert {t for t, *_ in rows} == {"prompt", "completion"} and all(est for *_, est in rows)
    assert answer.usage["usage"]["completion_tokens"] >= 1


@pytest.mark.parametrize("protocol", STREAM_PROTOCOLS)
async def test_an_error_event_inside_a_200_stream_keeps_the_text(protocol, chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Acme AI", provider=protocol)
    upstream.reply(text="first second third", error_after=2, error_message="Internal failure, please retry")

    _, error, message, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "server"
    assert error["message"] == "Acme AI reported an error during the answer: Internal failure, please retry"
    assert message.text == "first second "
    assert rows and all(context == "abort" for _, _, context, _ in rows)


async def test_a_failed_responses_stream_bills_the_usage_it_reported(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Codex", provider="openai_responses")
    upstream.reply(text="some text here", error_after=2, responses_failure="response.failed",
                   error_message="The model failed", usage=Usage(input_tokens=4, output_tokens=5))

    answer, error, message, rows = await _ask(chat_socket, endpoint)

    assert message.text == "some text "
    assert rows == {("prompt", 4, "abort", False), ("completion", 5, "abort", False)}
    assert answer.usage["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert (message.prompt_tokens, message.completion_tokens) == (4, 5)


@pytest.mark.parametrize("protocol", STREAM_PROTOCOLS)
async def test_malformed_json_in_a_chunk_ends_the_answer_with_a_protocol_error(
    protocol, chat_socket, chat_endpoint, upstream
):
    endpoint = await sync_to_async(chat_endpoint)("Acme AI", provider=protocol)
    upstream.reply(text="good words then", malformed_after=2)

    _, error, message, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "protocol" and "malformed chunk" in error["message"]
    assert message.text == "good words "
    assert rows


async def test_a_missing_user_key_asks_the_user_to_add_it(chat_socket, chat_endpoint, upstream):
    endpoint = await sync_to_async(chat_endpoint)("Own Key", api_key="user_provided")

    _, error, message, rows = await _ask(chat_socket, endpoint)

    assert error["code"] == "config" and "Add your key for Own Key" in error["message"]
    assert upstream.completions() == [] and rows == set()
