"""The pricing formula: each token bucket billed once at its own rate, exact decimals."""
from __future__ import annotations

from decimal import Decimal

import pytest

from billing.pricing import Currency, Rates, format_credits, price, prompt_cost, quantize, total
from billing.tokens import count_chat_tokens, count_tokens, estimated_usage
from endpoints.adapters.types import ChatMessage, Usage

D = Decimal
GPT = Rates.of(prompt=D("2.5"), completion=D("10"), cache_read=D("1.25"))
CLAUDE = Rates.of(prompt=D("3"), completion=D("15"), cache_read=D("0.3"), cache_write=D("3.75"))


def bill(usage: Usage, rates: Rates) -> dict[str, tuple[int, Decimal, Decimal]]:
    return {line.token_type: (line.tokens, line.rate, line.credits) for line in price(usage, rates)}


def test_openai_cached_tokens_are_taken_out_of_the_prompt_and_billed_at_cache_read():
    usage = Usage.from_openai(prompt_tokens=1000, completion_tokens=200, cached_tokens=600)
    lines = bill(usage, GPT)
    assert lines == {
        "prompt": (400, D("2.5"), D("1000")),
        "cache_read": (600, D("1.25"), D("750")),
        "completion": (200, D("10"), D("2000")),
    }
    # 1000 prompt tokens are billed once: 400 at prompt + 600 at cacheRead, never 1000 + 600
    assert sum(tokens for tokens, _, _ in lines.values()) == 1200
    assert total(price(usage, GPT)) == D("3750")


def test_openai_cached_tokens_above_the_prompt_count_are_capped():
    usage = Usage.from_openai(prompt_tokens=100, completion_tokens=0, cached_tokens=500)
    assert bill(usage, GPT) == {"cache_read": (100, D("1.25"), D("125"))}


def test_anthropic_counts_are_disjoint_and_each_billed_at_its_own_rate():
    usage = Usage.from_anthropic(
        input_tokens=50, output_tokens=300, cache_read_input_tokens=2000, cache_creation_input_tokens=1000
    )
    assert bill(usage, CLAUDE) == {
        "prompt": (50, D("3"), D("150")),
        "cache_read": (2000, D("0.3"), D("600")),
        "cache_write": (1000, D("3.75"), D("3750")),
        "completion": (300, D("15"), D("4500")),
    }
    assert total(price(usage, CLAUDE)) == D("9000")


def test_missing_cache_rates_fall_back_to_the_prompt_rate():
    rates = Rates.of(prompt=D("3"), completion=D("15"))
    usage = Usage.from_anthropic(
        input_tokens=10, output_tokens=0, cache_read_input_tokens=20, cache_creation_input_tokens=30
    )
    assert bill(usage, rates) == {
        "prompt": (10, D("3"), D("30")),
        "cache_read": (20, D("3"), D("60")),
        "cache_write": (30, D("3"), D("90")),
    }


def test_reasoning_tokens_are_billed_as_completion_and_only_once():
    usage = Usage.from_openai(prompt_tokens=10, completion_tokens=500, reasoning_tokens=400)
    assert bill(usage, GPT) == {"prompt": (10, D("2.5"), D("25")), "completion": (500, D("10"), D("5000"))}


def test_zero_usage_writes_no_lines():
    assert price(Usage(), GPT) == []


def test_negative_token_counts_are_refused():
    with pytest.raises(ValueError, match="cannot be negative"):
        price(Usage(input_tokens=-1), GPT)


def test_rates_with_six_decimals_are_exact():
    rates = Rates.of(prompt=D("0.000001"), completion=D("0.123457"))
    assert bill(Usage(input_tokens=3, output_tokens=7), rates) == {
        "prompt": (3, D("0.000001"), D("0.000003")),
        "completion": (7, D("0.123457"), D("0.864199")),
    }


def test_finer_rates_round_each_line_half_up_to_a_millionth_of_a_credit():
    rates = Rates.of(prompt=D("0.0000005"), completion=D("0.00000049"))
    lines = bill(Usage(input_tokens=1, output_tokens=1), rates)
    assert lines["prompt"][2] == D("0.000001")  # 0.0000005 rounds half up
    assert lines["completion"][2] == D("0.000000")  # 0.00000049 rounds down
    assert quantize(D("2.0000025")) == D("2.000003")
    assert quantize(D("-2.0000025")) == D("-2.000003")  # half away from zero on refunds too


def test_amounts_are_decimals_never_floats():
    line = price(Usage(input_tokens=3), Rates.of(prompt=D("0.1"), completion=D("0.2")))[0]
    assert isinstance(line.credits, Decimal) and line.credits == D("0.3")  # 3 × 0.1 is not 0.30000000000000004


def test_the_prompt_estimate_bills_every_prompt_token_at_the_prompt_rate():
    assert prompt_cost(1000, GPT) == D("2500")
    assert prompt_cost(-5, GPT) == D("0")


def test_a_model_without_rates_is_priced_at_the_portals_default_rates(db, make_endpoint):
    from billing.services import rates_for
    from portal.models import PortalSettings

    settings = PortalSettings.load()
    settings.default_prompt_rate, settings.default_completion_rate = D("7"), D("21")
    settings.save()
    unpriced = make_endpoint(models=("mystery-model",))
    rates = rates_for(endpoint=unpriced, model="mystery-model")
    assert (rates.prompt, rates.completion, rates.cache_read, rates.cache_write, rates.is_default) == (
        D("7"), D("21"), D("7"), D("7"), True,
    )
    assert rates_for(endpoint=None, model="anything").prompt == D("7")
    assert total(price(Usage(input_tokens=10, output_tokens=10), rates)) == D("280")  # never free


def test_a_model_with_rates_is_priced_at_its_own_rates(db, make_endpoint):
    from billing.services import rates_for

    endpoint = make_endpoint(
        models=("gpt-x",),
        rates={"prompt_rate": D("2.5"), "completion_rate": D("10"), "context_tokens": 128000,
               "cache_read_rate": D("1.25")},
    )
    rates = rates_for(endpoint=endpoint, model="gpt-x")
    assert (rates.prompt, rates.completion, rates.cache_read, rates.cache_write, rates.is_default) == (
        D("2.5"), D("10"), D("1.25"), D("2.5"), False,
    )


def test_costs_are_shown_in_the_display_currency():
    usd = Currency()
    assert usd.format(D("1234")) == "$0.001234"
    assert usd.format(D("12500000")) == "$12.50"
    assert usd.format(D("-1200000")) == "-$1.20"
    eur = Currency(code="EUR", symbol="€", rate=D("0.9"))
    assert eur.amount(D("1000000")) == D("0.900000")
    assert eur.format(D("2500000000")) == "€2,250.00"
    assert format_credits(D("1234567")) == "1,234,567"
    assert format_credits(D("1.500000")) == "1.5"


def test_the_tokenizer_counts_real_bpe_tokens_offline():
    assert count_tokens("hello world") == 2  # cl100k: [15339, 1917]
    assert count_tokens("") == 0
    assert count_tokens("<|endoftext|>") > 1  # special-token text is counted as text, never refused
    long = "The quick brown fox jumps over the lazy dog. " * 100
    assert 900 <= count_tokens(long) <= 1100


def test_chat_prompts_are_counted_with_the_message_framing():
    messages = [ChatMessage("user", "hello world"), ChatMessage("assistant", [{"type": "text", "text": "hi"}])]
    assert count_chat_tokens(messages) == 3 + (3 + 2) + (3 + 1)
    assert count_chat_tokens(messages, system="hello world") == count_chat_tokens(messages) + 5


def test_tool_calls_sent_back_count_their_name_and_arguments():
    from endpoints.adapters.types import ToolCall

    called = [ChatMessage("assistant", "", tool_calls=[ToolCall("c1", "weather", "hello world")]),
              ChatMessage("tool", "hi", tool_call_id="c1")]
    assert count_chat_tokens(called) == 3 + (3 + count_tokens("weather") + 2) + (3 + 1)


def test_a_stream_that_died_is_estimated_from_what_was_received():
    usage = estimated_usage(prompt_tokens=120, received_text="hello world")
    assert usage == Usage(input_tokens=120, output_tokens=2)
