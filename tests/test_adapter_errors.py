"""Every failure becomes one clear StreamError as the last event; text and usage received before it
are still delivered; secrets never appear in the message. Each case runs on all three protocols."""
from __future__ import annotations

import logging
import time
from email.utils import formatdate

import pytest

from endpoints.adapters.types import StreamError, Usage
from endpoints.models import Protocol
from tests.streaming import final, run_chat, text_of, usage_of

SECRET = "sk-live-abcdefghijklmnop0123456789"
PROTOCOLS = [Protocol.OPENAI_CHAT, Protocol.ANTHROPIC, Protocol.OPENAI_RESPONSES]


@pytest.fixture(params=PROTOCOLS)
def endpoint(request, make_endpoint, upstream):
    base = upstream.url if request.param == Protocol.ANTHROPIC else upstream.base_url
    return make_endpoint("Acme AI", base_url=base, provider=request.param, api_key=SECRET, models=("acme-1",))


def error_of(events) -> StreamError:
    last = final(events)
    assert isinstance(last, StreamError), f"expected an error, got {last!r}"
    assert SECRET not in last.message and "abcdefghijklmnop" not in last.message
    return last


def test_401_is_a_bad_key_message_that_never_echoes_the_key(endpoint, upstream):
    upstream.reply(status=401, body={"error": {"message": f"Incorrect API key provided: {SECRET}.", "type": "invalid_request_error"}})

    error = error_of(run_chat(endpoint))

    assert (error.kind, error.status) == ("auth", 401)
    assert error.message.startswith("Acme AI rejected the API key (HTTP 401): Incorrect API key provided: [redacted].")


def test_403_is_an_access_message(endpoint, upstream):
    upstream.reply(status=403)

    error = error_of(run_chat(endpoint))

    assert (error.kind, error.status) == ("auth", 403) and "refused access" in error.message


def test_404_names_the_unknown_model(endpoint, upstream):
    upstream.reply(status=404)

    error = error_of(run_chat(endpoint))

    assert (error.kind, error.status) == ("not_found", 404)
    assert "Acme AI does not know the model 'acme-1' (HTTP 404)" in error.message


def test_429_carries_retry_after_in_the_message(endpoint, upstream):
    upstream.reply(status=429, retry_after="7")

    error = error_of(run_chat(endpoint))

    assert (error.kind, error.status, error.retry_after) == ("rate_limit", 429, 7.0)
    assert "rate limiting" in error.message and "Retry after 7 seconds." in error.message


def test_429_retry_after_may_be_an_http_date(endpoint, upstream):
    upstream.reply(status=429, retry_after=formatdate(time.time() + 120, usegmt=True))

    error = error_of(run_chat(endpoint))

    assert 100 < error.retry_after <= 120


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_a_server_error(endpoint, upstream, status):
    upstream.reply(status=status)

    error = error_of(run_chat(endpoint))

    assert (error.kind, error.status) == ("server", status)
    assert f"Acme AI had a server error (HTTP {status})" in error.message


def test_400_passes_the_provider_reason_on(endpoint, upstream):
    upstream.reply(status=400, body={"error": {"message": "temperature must be <= 2", "type": "invalid_request_error"}})

    error = error_of(run_chat(endpoint))

    assert (error.kind, error.status) == ("upstream", 400)
    assert error.message == "Acme AI refused the request (HTTP 400): temperature must be <= 2"


def test_a_non_json_error_body_is_shown_short_and_plain(endpoint, upstream):
    upstream.reply(status=502, body="<html><body>Bad   gateway\n</body></html>")

    error = error_of(run_chat(endpoint))

    assert "<html><body>Bad gateway </body></html>" in error.message


def test_connection_refused(make_endpoint, upstream):
    endpoint = make_endpoint("Down", base_url=upstream.refused_url())

    error = error_of(run_chat(endpoint))

    assert error.kind == "connect"
    assert error.message == "Could not connect to Down (connection refused)."


def test_connect_timeout(make_endpoint, upstream, settings):
    settings.UPSTREAM_CONNECT_TIMEOUT = 0.3
    endpoint = make_endpoint("Slow", base_url=upstream.unreachable_url())

    error = error_of(run_chat(endpoint))

    assert error.kind == "timeout"
    assert error.message == "Connecting to Slow timed out after 0.3 seconds."


def test_read_timeout_before_the_answer(endpoint, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.reply(delay=3)

    error = error_of(run_chat(endpoint))

    assert error.kind == "timeout"
    assert error.message == "Acme AI stopped responding before answering (no data for 0.3 seconds)."


def test_read_timeout_mid_stream_keeps_the_text(endpoint, upstream, settings):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    upstream.reply(text="one two three four", stall_after=2, stall=3)

    events = run_chat(endpoint)

    assert text_of(events) == "one two "
    error = error_of(events)
    assert error.kind == "timeout" and "during the answer" in error.message


def test_a_stream_cut_mid_way_keeps_the_text(endpoint, upstream):
    upstream.reply(text="alpha beta gamma delta", cut_after=2, usage=Usage(input_tokens=30, output_tokens=9))

    events = run_chat(endpoint)

    assert text_of(events) == "alpha beta "
    error = error_of(events)
    assert error.kind == "cut"
    assert error.message == "The connection to Acme AI was cut before the answer finished."


def test_anthropic_cut_still_reports_the_prompt_usage_it_saw(make_endpoint, upstream):
    endpoint = make_endpoint("Claude", base_url=upstream.url, provider=Protocol.ANTHROPIC)
    upstream.reply(text="alpha beta gamma", cut_after=1, usage=Usage(input_tokens=30, cache_read_tokens=100, output_tokens=9))

    events = run_chat(endpoint)

    assert text_of(events) == "alpha "
    assert usage_of(events) == Usage(input_tokens=30, cache_read_tokens=100, output_tokens=1)
    assert error_of(events).kind == "cut"


def test_an_error_event_inside_a_200_stream_keeps_the_text(endpoint, upstream):
    upstream.reply(text="first second third", error_after=2, error_message="Internal failure, please retry")

    events = run_chat(endpoint)

    assert text_of(events) == "first second "
    error = error_of(events)
    assert error.kind == "server"
    assert error.message == "Acme AI reported an error during the answer: Internal failure, please retry"


def test_a_rate_limit_error_event_is_a_rate_limit(endpoint, upstream):
    upstream.reply(text="a b", error_after=1, error_type="rate_limit_error", error_message="Slow down")

    assert error_of(run_chat(endpoint)).kind == "rate_limit"


def test_responses_failed_event_is_an_error_with_usage(make_endpoint, upstream):
    endpoint = make_endpoint("Codex", base_url=upstream.base_url, provider=Protocol.OPENAI_RESPONSES)
    upstream.reply(text="some text here", error_after=2, responses_failure="response.failed",
                   error_message="The model failed", usage=Usage(input_tokens=4, output_tokens=2))

    events = run_chat(endpoint)

    assert text_of(events) == "some text "
    assert usage_of(events) == Usage(input_tokens=4, output_tokens=2)
    assert error_of(events).message == "Codex reported an error during the answer: The model failed"


def test_malformed_json_in_a_chunk_stops_with_a_protocol_error(endpoint, upstream):
    upstream.reply(text="good words then", malformed_after=2)

    events = run_chat(endpoint)

    assert text_of(events) == "good words "
    error = error_of(events)
    assert error.kind == "protocol"
    assert error.message == "Acme AI sent a malformed chunk (not valid JSON); the answer stops there."


def test_failures_are_logged_without_secrets(endpoint, upstream, caplog):
    upstream.reply(status=401, body={"error": {"message": f"bad key {SECRET}"}})

    with caplog.at_level(logging.WARNING, logger="endpoints"):
        run_chat(endpoint)

    assert "Acme AI" in caplog.text and SECRET not in caplog.text


def test_request_urls_with_keys_in_the_query_are_not_logged(make_endpoint, upstream, monkeypatch):
    import logging.config

    from django.conf import settings

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.name}: {record.getMessage()}")

    logging.config.dictConfig(settings.LOGGING)  # the start-up configuration, at INFO
    keep = Keep(level=logging.DEBUG)
    logging.getLogger().addHandler(keep)
    monkeypatch.setenv("GEMINI_KEY", "AIzaSyQueryKey0123456789")
    endpoint = make_endpoint(base_url=upstream.base_url, query_params={"key": "${GEMINI_KEY}"})
    upstream.reply(status=500)
    try:
        run_chat(endpoint)
    finally:
        logging.getLogger().removeHandler(keep)

    assert upstream.last.query == {"key": "AIzaSyQueryKey0123456789"}
    assert any("had a server error" in line for line in lines)  # the failure itself is logged
    assert not any("AIzaSyQueryKey0123456789" in line for line in lines)
