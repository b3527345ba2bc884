"""`manage.py import_librechat_yaml`: LibreChat's own example file, a file using every field, a
second run, invalid files and --dry-run."""
from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts.models import Role
from endpoints.librechat_import import LibreChatImportError, import_librechat_yaml
from endpoints.models import Endpoint, EndpointModel, Kind, ModelSpec, Protocol
from portal.models import PortalSettings

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = FIXTURES / "librechat.example.yaml"
FULL = FIXTURES / "librechat.full.yaml"
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def run(path: Path | str, *args: str) -> str:
    out = StringIO()
    call_command("import_librechat_yaml", str(path), *args, stdout=out)
    return out.getvalue()


def endpoint(name: str) -> Endpoint:
    return Endpoint.objects.get(name=name)


def listed(name: str) -> list[str]:
    return list(endpoint(name).models.filter(listed=True).order_by("ordering").values_list("name", flat=True))


def snapshot() -> dict[str, list[dict]]:
    return {
        "endpoints": list(Endpoint.objects.order_by("pk").values()),
        "models": list(EndpointModel.objects.order_by("pk").values()),
        "specs": list(ModelSpec.objects.order_by("pk").values()),
        "roles": list(Role.objects.order_by("pk").values()),
        "portal": list(PortalSettings.objects.values()),
    }


def write(tmp_path: Path, data: dict, name: str = "librechat.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def raw_column(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


# --- LibreChat's example file ---------------------------------------------------------------

def test_the_example_file_creates_its_five_custom_endpoints():
    run(EXAMPLE)

    xai = endpoint("xai")
    assert (xai.kind, xai.provider) == (Kind.CUSTOM, Protocol.OPENAI_CHAT)
    assert xai.api_key == "${XAI_API_KEY}"
    assert xai.base_url == "https://api.x.ai/v1"
    assert xai.models_fetch is True
    assert (xai.title_convo, xai.title_model, xai.model_display_label) == (True, "grok-4.7", "xAI")
    assert listed("xai") == ["grok-4.7"]

    claude = endpoint("Claude-Compatible")
    assert claude.provider == Protocol.ANTHROPIC
    assert claude.api_key == "${ANTHROPIC_API_KEY}"
    assert claude.base_url == "https://api.anthropic.com"
    assert claude.headers == {"anthropic-version": "2023-06-01"}
    assert claude.models_fetch is False
    assert listed("Claude-Compatible") == ["claude-sonnet-4-5", "claude-opus-4-5"]
    assert (claude.title_model, claude.model_display_label) == ("claude-sonnet-4-5", "Claude (Compatible)")

    groq = endpoint("groq")
    assert groq.base_url == "https://api.groq.com/openai/v1/"
    assert listed("groq") == [
        "llama3-70b-8192",
        "llama3-8b-8192",
        "llama2-70b-4096",
        "mixtral-8x7b-32768",
        "gemma-7b-it",
    ]
    assert (groq.title_model, groq.models_fetch) == ("mixtral-8x7b-32768", False)

    mistral = endpoint("Mistral")
    assert mistral.drop_params == ["stop", "user", "frequency_penalty", "presence_penalty"]
    assert listed("Mistral") == ["mistral-tiny", "mistral-small", "mistral-medium"]

    openrouter = endpoint("OpenRouter")
    assert openrouter.api_key == "${OPENROUTER_KEY}"
    assert openrouter.headers == {"x-librechat-body-parentmessageid": "{{LIBRECHAT_BODY_PARENTMESSAGEID}}"}
    assert openrouter.drop_params == ["stop"]
    assert listed("OpenRouter") == ["meta-llama/llama-3-70b-instruct"]

    # Fields the file leaves out keep LibreChat's defaults.
    assert (groq.title_timing, groq.title_method, groq.title_message_role) == ("immediate", "completion", "system")
    assert groq.title_prompt_template == "User: {input}\nAI: {output}"
    assert (groq.add_params, groq.custom_params, groq.direct_endpoint, groq.user_id_query) == ({}, {}, False, False)
    # In the order of the file.
    customs = Endpoint.objects.filter(kind=Kind.CUSTOM).order_by("ordering")
    assert [e.name for e in customs] == ["xai", "Claude-Compatible", "groq", "Mistral", "OpenRouter"]


def test_the_built_in_endpoints_the_specs_reference_are_created_like_librechat_runs_them():
    output = run(EXAMPLE)

    openai = endpoint("openAI")
    assert (openai.kind, openai.provider) == (Kind.OPENAI, Protocol.OPENAI_CHAT)
    assert openai.api_key == "${OPENAI_API_KEY}"
    assert openai.base_url == "https://api.openai.com/v1"
    assert openai.models_fetch is True
    assert listed("openAI") == ["gpt-4o", "gpt-4o-mini"]

    anthropic = endpoint("anthropic")
    assert (anthropic.kind, anthropic.provider) == (Kind.ANTHROPIC, Protocol.ANTHROPIC)
    assert anthropic.api_key == "${ANTHROPIC_API_KEY}"
    assert anthropic.base_url == "https://api.anthropic.com"
    assert listed("anthropic") == ["claude-sonnet-4"]

    assert Endpoint.objects.count() == 7
    assert "created because referenced by modelSpecs.list[0] (gpt-4o)" in output
    assert "created because referenced by modelSpecs.list[3] (writing-assistant)" in output


def test_the_example_model_specs_are_imported_with_their_presets():
    run(EXAMPLE)

    specs = {s.name: s for s in ModelSpec.objects.select_related("endpoint")}
    assert list(specs) == [
        "gpt-4o", "llama3-70b-8192", "coding-assistant", "writing-assistant", "fast-models", "general-assistant",
    ]
    gpt = specs["gpt-4o"]
    assert (gpt.label, gpt.description, gpt.group) == (
        "GPT-4 Optimized",
        "Most capable GPT-4 model with multimodal support",
        "openAI",
    )
    assert (gpt.endpoint.name, gpt.model, gpt.order, gpt.is_default) == ("openAI", "gpt-4o", 0, False)

    coding = specs["coding-assistant"]
    assert (coding.endpoint.name, coding.model) == ("openAI", "gpt-4o")
    assert coding.system_prompt == "You are an expert coding assistant..."
    assert coding.temperature == Decimal("0.3")
    assert (coding.group, coding.group_icon) == ("my-assistants", "https://example.com/icons/assistants.png")
    assert (coding.top_p, coding.max_output_tokens, coding.reasoning_effort, coding.extra_params) == (
        None,
        None,
        "",
        {},
    )

    writing = specs["writing-assistant"]
    assert (writing.endpoint.name, writing.model) == ("anthropic", "claude-sonnet-4")
    assert writing.system_prompt == "You are a creative writing expert..."

    assert (specs["llama3-70b-8192"].endpoint.name, specs["llama3-70b-8192"].model) == ("groq", "llama3-70b-8192")
    assert (specs["fast-models"].group, specs["fast-models"].group_icon) == ("Fast Models", "groq")
    assert specs["fast-models"].description == ""
    assert (specs["general-assistant"].model, specs["general-assistant"].order) == ("gpt-4o-mini", 5)


def test_the_example_balance_goes_to_the_default_role():
    role = Role.objects.default()
    role.balance_enabled, role.start_balance = True, Decimal(1)
    role.save()

    run(EXAMPLE)

    role.refresh_from_db()
    assert role.name == Role.USER
    assert role.balance_enabled is False
    assert role.start_balance == Decimal(20000)
    assert role.auto_refill_enabled is False
    assert (role.refill_interval_value, role.refill_interval_unit) == (30, "days")
    assert role.refill_amount == Decimal(10000)
    assert Role.objects.get(name=Role.ADMIN).start_balance == Decimal(20000)  # only the default role


def test_the_report_says_what_was_skipped_and_why():
    output = run(EXAMPLE)

    assert "Created (13):" in output
    assert "13 created, 0 updated, 1 unchanged, 6 skipped." in output
    assert "cache — LibreChat's config-cache switch" in output
    assert "registration — sign-in methods come from Atrium's settings" in output
    assert "actions — agent actions are not part of Atrium" in output
    assert "endpoints.custom[1] (Claude-Compatible).activityLabel — activity labels are not part of Atrium" in output
    assert "endpoints.custom[1] (Claude-Compatible).activityModel — activity labels are not part of Atrium" in output
    assert "interface: customWelcome, fileSearch, privacyPolicy" in output
    assert "not modelled by Atrium" in output


# --- a file with every field ------------------------------------------------------------------

def test_every_field_of_the_custom_endpoint_object_is_imported():
    run(FULL)

    e = endpoint("Everything")
    assert e.kind == Kind.CUSTOM
    assert e.api_key == "${EVERYTHING_API_KEY}"
    assert e.base_url == "https://llm.example.com/v1/chat/completions"
    assert e.provider == Protocol.OPENAI_CHAT
    assert e.icon_url == "https://llm.example.com/icon.svg"
    assert listed("Everything") == ["big-model", "small-model"]
    assert e.models_fetch is True
    assert e.user_id_query is True
    assert e.title_convo is True
    assert e.title_timing == "final"
    assert e.title_method == "functions"
    assert e.title_model == "current_model"
    assert e.title_prompt == "Write a five-word title for:\n\n{convo}"
    assert e.title_prompt_template == "Q: {input}\nA: {output}"
    assert e.title_endpoint == endpoint("Local")
    assert e.title_message_role == "user"
    assert e.model_display_label == "Everything AI"
    assert e.add_params == {
        "web_search": True, "safe_prompt": False, "max_retries": 2, "stop_sequences": ["END"],
        "metadata": {"team": "platform"},
    }
    assert e.drop_params == ["stop", "user", "frequency_penalty", "presence_penalty"]
    assert e.custom_params == {
        "defaultParamsEndpoint": "custom", "reasoningFormat": "reasoning_object", "reasoningKey": "reasoning_content",
        "paramDefinitions": [{"key": "temperature", "default": 0.5}],
    }
    assert e.headers == {
        "X-User-Email": "{{LIBRECHAT_USER_EMAIL}}", "X-User-Id": "{{LIBRECHAT_USER_ID}}",
        "X-Parent": "{{LIBRECHAT_BODY_PARENTMESSAGEID}}", "X-Gateway-Key": "${GATEWAY_KEY}",
    }
    assert e.direct_endpoint is True

    gateway = endpoint("Claude Gateway")
    assert gateway.provider == Protocol.ANTHROPIC
    assert (gateway.api_key, gateway.base_url) == ("user_provided", "user_provided")
    assert gateway.user_provides_key and gateway.user_provides_base_url
    assert gateway.icon_url == "anthropic"
    assert gateway.custom_params == {"reasoningFormat": "disabled"}


def test_token_config_becomes_model_rates():
    run(FULL)

    big = EndpointModel.objects.get(endpoint__name="Everything", name="big-model")
    assert (big.prompt_rate, big.completion_rate, big.context_tokens) == (Decimal(3), Decimal(15), 200000)
    assert (big.cache_read_rate, big.cache_write_rate) == (Decimal("0.3"), Decimal("3.75"))
    assert big.listed and big.has_rates

    fetched = EndpointModel.objects.get(endpoint__name="Everything", name="priced-but-fetched")
    assert (fetched.prompt_rate, fetched.completion_rate, fetched.context_tokens) == (
        Decimal("0.15"),
        Decimal("0.6"),
        128000,
    )
    assert (fetched.cache_read_rate, fetched.cache_write_rate) == (None, None)
    assert fetched.listed is False  # priced, but not in models.default

    small = EndpointModel.objects.get(endpoint__name="Everything", name="small-model")
    assert not small.has_rates and small.context_tokens is None

    gpt4o = EndpointModel.objects.get(endpoint__name="openAI", name="gpt-4o")
    assert (gpt4o.prompt_rate, gpt4o.completion_rate, gpt4o.cache_read_rate) == (
        Decimal("2.5"),
        Decimal(10),
        Decimal("1.25"),
    )


def test_the_built_in_kinds_are_imported_with_their_settings():
    output = run(FULL)

    openai = endpoint("openAI")
    assert (openai.kind, openai.api_key, openai.base_url) == (Kind.OPENAI, "${OPENAI_API_KEY}", "https://api.openai.com/v1")
    assert (openai.title_convo, openai.title_model, openai.title_method, openai.models_fetch) == (
        True,
        "gpt-4o-mini",
        "structured",
        True,
    )
    assert "endpoints.openAI.streamRate — Atrium streams every delta as it arrives" in output

    anthropic = endpoint("anthropic")
    assert (anthropic.kind, anthropic.provider, anthropic.api_key) == (
        Kind.ANTHROPIC,
        Protocol.ANTHROPIC,
        "${ANTHROPIC_API_KEY}",
    )
    assert anthropic.headers == {"X-Conversation-Id": "{{LIBRECHAT_BODY_CONVERSATIONID}}"}
    assert listed("anthropic") == ["claude-sonnet-4-5", "claude-3-5-haiku-20241022"]

    google = endpoint("google")
    assert (google.kind, google.api_key) == (Kind.GOOGLE, "${GOOGLE_KEY}")
    assert google.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert google.title_prompt_template == "Human: {input}\nAssistant: {output}"

    bedrock = endpoint("bedrock")
    assert bedrock.kind == Kind.BEDROCK
    assert bedrock.api_key == "${AWS_BEARER_TOKEN_BEDROCK}"
    assert bedrock.base_url == "https://bedrock-runtime.${BEDROCK_AWS_DEFAULT_REGION}.amazonaws.com/openai/v1"
    assert bedrock.title_endpoint == anthropic
    assert listed("bedrock") == ["us.amazon.nova-lite-v1:0"]
    assert "endpoints.bedrock.availableRegions — Atrium's Bedrock endpoint uses one region" in output


def test_azure_groups_become_one_endpoint_each_with_deployments_and_api_version():
    output = run(FULL)

    westus = endpoint("westus")
    assert westus.kind == Kind.AZURE_OPENAI
    assert westus.api_key == "${WESTUS_API_KEY}"
    assert westus.base_url == "https://my-westus.openai.azure.com/openai/deployments"
    assert westus.query_params == {"api-version": "2024-10-21"}
    assert (westus.title_convo, westus.title_model) == (True, "gpt-4o")  # endpoint-level settings: every group
    deployments = dict(westus.models.values_list("name", "deployment_name"))
    assert deployments == {"gpt-4o": "gpt-4o-prod", "gpt-35-turbo": "gpt-35-turbo", "gpt-4-vision": "vision"}
    assert "groups[0] (westus).models.gpt-4-vision.version — Atrium sends one api-version per Azure group" in output

    east = endpoint("eastus-gateway")
    assert east.base_url == "https://gateway.example.com/v1/acct/azure-openai/my-eastus"
    assert east.query_params == {"api-version": "2024-02-01"}  # a date-looking version stays text
    assert east.headers == {"X-Team": "{{LIBRECHAT_USER_EMAIL}}"}
    assert dict(east.models.values_list("name", "deployment_name")) == {"gpt-4-turbo": "gpt-4-turbo"}

    assert not Endpoint.objects.filter(name="mistral-serverless").exists()
    assert "groups[2] (mistral-serverless) — serverless Azure groups are not imported" in output
    assert "endpoints.azureOpenAI.plugins — LibreChat plugins are not part of Atrium" in output


def test_model_specs_portal_switches_balance_and_currency_are_imported():
    output = run(FULL)

    big = ModelSpec.objects.get(name="everything-big")
    assert (big.label, big.description, big.group) == (
        "Big, carefully",
        "The big model with a system prompt",
        "Everything",
    )
    assert (big.group_icon, big.icon_url, big.order, big.is_default) == (
        "https://llm.example.com/group.svg", "https://llm.example.com/spec.svg", 2, True)
    assert (big.endpoint.name, big.model, big.system_prompt) == ("Everything", "big-model", "You are careful.")
    assert (big.temperature, big.top_p, big.max_output_tokens, big.reasoning_effort) == (
        Decimal("0.25"), Decimal("0.9"), 4096, "high")
    assert big.extra_params == {"frequency_penalty": 0.5, "modelLabel": "Careful"}

    azure = ModelSpec.objects.get(name="azure-4o")
    assert (azure.endpoint.name, azure.model, azure.system_prompt, azure.max_output_tokens) == (
        "westus",
        "gpt-4o",
        "Be brief.",
        1000,
    )
    assert ModelSpec.objects.get(name="gemini").endpoint == endpoint("google")

    assert not ModelSpec.objects.filter(name__in=["nowhere", "assistant"]).exists()
    assert "modelSpecs.list[3] (nowhere) — preset.endpoint 'no-such-endpoint' is not a configured endpoint" in output
    assert (
        "modelSpecs.list[4] (assistant) — preset.endpoint 'assistants': the Assistants API is not part of Atrium"
        in output
    )
    assert "modelSpecs.list[0] (everything-big).showIconInMenu — not a model spec key Atrium imports" in output
    assert "modelSpecs.addedEndpoints — which endpoints sit beside the specs is a role setting" in output

    portal = PortalSettings.load()
    assert (portal.model_specs_enforce, portal.model_specs_prioritize) == (True, False)
    assert (portal.currency_code, portal.currency_symbol, portal.currency_rate) == ("EUR", "€", Decimal("0.92"))

    role = Role.objects.default()
    assert (role.balance_enabled, role.start_balance, role.auto_refill_enabled) == (True, Decimal(500000), True)
    assert (role.refill_interval_value, role.refill_interval_unit, role.refill_amount) == (
        7,
        "weeks",
        Decimal("250000.5"),
    )


def test_a_literal_api_key_is_stored_encrypted_and_shown_masked():
    run(FULL)

    local = endpoint("Local")
    assert local.api_key == "sk-local-literal-secret-0123456789"
    stored = raw_column("endpoints_endpoint", "api_key", local.pk)
    assert stored.startswith("fernet:") and "sk-local-literal-secret" not in stored
    assert "sk-local-literal-secret" not in repr(local)
    assert local.api_key_display.endswith("6789") and "literal" not in local.api_key_display
    # ${VAR} references are kept as written, never resolved at import.
    assert endpoint("Everything").api_key == "${EVERYTHING_API_KEY}"


# --- a second run ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [EXAMPLE, FULL], ids=["example", "full"])
def test_a_second_run_changes_nothing_and_says_so(path):
    run(path)
    before = snapshot()

    output = run(path)

    assert snapshot() == before
    assert "0 created, 0 updated" in output
    assert "Created" not in output and "Updated" not in output


def test_a_changed_file_updates_in_place_without_duplicates(tmp_path):
    run(EXAMPLE)
    counts = (Endpoint.objects.count(), EndpointModel.objects.count(), ModelSpec.objects.count())
    data = example()
    groq = data["endpoints"]["custom"][2]
    groq["titleModel"] = "llama3-8b-8192"
    groq["models"]["default"] = ["llama3-70b-8192", "llama3-8b-8192", "llama-3.3-70b"]
    groq["tokenConfig"] = {"llama3-8b-8192": {"prompt": 0.05, "completion": 0.08, "context": 8192}}
    data["modelSpecs"]["list"][5]["label"] = "General"
    data["balance"]["startBalance"] = 1000

    output = run(write(tmp_path, data))

    assert (
        "endpoint 'groq'  [endpoints.custom[2] (groq)] — titleModel, model llama3-8b-8192 (prompt, completion, "
        "context), +model llama-3.3-70b, unlisted model llama2-70b-4096, unlisted model mixtral-8x7b-32768, "
        "unlisted model gemma-7b-it"
    ) in output
    assert "model spec 'general-assistant'  [modelSpecs.list[5] (general-assistant)] — label" in output
    assert "balance policy of the default role USER  [balance] — startBalance" in output
    assert "0 created, 3 updated" in output
    assert Endpoint.objects.count() == counts[0]
    assert EndpointModel.objects.count() == counts[1] + 1
    assert ModelSpec.objects.count() == counts[2]
    assert listed("groq") == ["llama3-70b-8192", "llama3-8b-8192", "llama-3.3-70b"]
    gemma = EndpointModel.objects.get(endpoint__name="groq", name="gemma-7b-it")
    assert gemma.listed is False  # kept (history), no longer offered
    assert endpoint("groq").title_model == "llama3-8b-8192"


def test_moving_the_default_spec_to_another_spec_works(tmp_path):
    data = example()
    data["modelSpecs"]["list"][0]["default"] = True
    run(write(tmp_path, data, "one.yaml"))
    del data["modelSpecs"]["list"][0]["default"]
    data["modelSpecs"]["list"][4]["default"] = True

    run(write(tmp_path, data, "two.yaml"))

    assert list(ModelSpec.objects.filter(is_default=True).values_list("name", flat=True)) == ["fast-models"]


# --- invalid files change nothing ---------------------------------------------------------------

def _break(mutate):
    def build() -> dict:
        data = example()
        mutate(data)
        return data
    return build


def _custom(index: int, **changes):
    return _break(lambda data: data["endpoints"]["custom"][index].update(changes))


INVALID = {
    "title prompt without {convo}": (
        _custom(2, titlePrompt="Summarise: {conversation}"),
        "endpoints.custom[2] (groq).titlePrompt: titlePrompt must contain the {convo} placeholder.",
    ),
    "title prompt template without {output}": (
        _custom(0, titlePromptTemplate="User: {input}"),
        (
            "endpoints.custom[0] (xai).titlePromptTemplate: titlePromptTemplate must contain the {input} and "
            "{output} placeholders (missing {output})."
        ),
    ),
    "a wrong type": (
        _custom(3, titleConvo="yes"),
        "endpoints.custom[3] (Mistral).titleConvo: expected true or false, got the text 'yes'.",
    ),
    "a number where text belongs": (
        _custom(0, apiKey=12345),
        "endpoints.custom[0] (xai).apiKey: expected text, got the number 12345; quote it in YAML.",
    ),
    "a reserved name": (
        _custom(4, name="OpenAI"),
        "endpoints.custom[4] (OpenAI).name: 'OpenAI' is a reserved endpoint name",
    ),
    "a header value that is not a string": (
        _custom(1, headers={"anthropic-version": 20230601}),
        "endpoints.custom[1] (Claude-Compatible).headers: headers: the value of 'anthropic-version' must be a string",
    ),
    "an unknown header placeholder": (
        _custom(4, headers={"X-Who": "{{LIBRECHAT_USER_SHOESIZE}}"}),
        "endpoints.custom[4] (OpenRouter).headers: headers.X-Who: unknown placeholder {{LIBRECHAT_USER_SHOESIZE}}",
    ),
    "a malformed env reference": (
        _custom(0, apiKey="${XAI_API_KEY"),
        "endpoints.custom[0] (xai).apiKey: apiKey: malformed environment reference",
    ),
    "an enum value LibreChat does not have": (
        _custom(2, titleMethod="magic"),
        (
            "endpoints.custom[2] (groq).titleMethod: Value 'magic' is not a valid choice. Valid values: completion, "
            "structured, functions."
        ),
    ),
    "models.fetch with the anthropic provider": (
        _break(lambda data: data["endpoints"]["custom"][1]["models"].update(fetch=True)),
        (
            "endpoints.custom[1] (Claude-Compatible).models.fetch: "
            "models.fetch is not available with the Anthropic protocol"
        ),
    ),
    "a rate without context": (
        _custom(2, tokenConfig={"llama3-8b-8192": {"prompt": 0.05, "completion": 0.08}}),
        "endpoints.custom[2] (groq).tokenConfig.llama3-8b-8192.context: Required in a token rate",
    ),
    "customParams with an unknown reasoningFormat": (
        _custom(0, customParams={"reasoningFormat": "loud"}),
        (
            "endpoints.custom[0] (xai).customParams: customParams.reasoningFormat: Input should be 'reasoning_effort', "
            "'reasoning_object' or 'disabled' (got 'loud')"
        ),
    ),
    "models left out": (
        _break(lambda data: data["endpoints"]["custom"][0].pop("models")),
        "endpoints.custom[0] (xai).models: models is required",
    ),
    "the same name twice": (
        _custom(3, name="GROQ"),
        (
            "endpoints.custom[3] (GROQ): the endpoint name 'GROQ' is used twice in this file "
            "(also endpoints.custom[2] (groq))"
        ),
    ),
    "a spec naming a model its endpoint does not have": (
        _break(lambda data: data["modelSpecs"]["list"][1]["preset"].update(model="llama-9000")),
        "modelSpecs.list[1] (llama3-70b-8192).preset.model: 'llama-9000' is not a model of endpoint 'groq'",
    ),
    "a balance unit LibreChat does not have": (
        _break(lambda data: data["balance"].update(refillIntervalUnit="fortnights")),
        "balance.refillIntervalUnit: Value 'fortnights' is not a valid choice.",
    ),
    "a negative start balance": (
        _break(lambda data: data["balance"].update(startBalance=-5)),
        "balance.startBalance: Ensure this value is greater than or equal to 0.",
    ),
    "a spec temperature out of range": (
        _break(lambda data: data["modelSpecs"]["list"][2]["preset"].update(temperature=3)),
        "modelSpecs.list[2] (coding-assistant).preset.temperature: Ensure this value is less than or equal to 2.",
    ),
    "two default specs": (
        _break(lambda data: [s.update(default=True) for s in data["modelSpecs"]["list"][:2]]),
        "modelSpecs.list: only one spec can be the default",
    ),
    "endpoints that are not an object": (
        _break(lambda data: data.update(endpoints=["xai"])),
        "endpoints: expected an object, got a list.",
    ),
}


@pytest.mark.parametrize("build, message", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_file_changes_nothing_and_names_the_entry_and_field(tmp_path, build, message):
    run(FULL)  # a database that already holds configuration: updates must roll back too
    before = snapshot()

    with pytest.raises(CommandError) as raised:
        run(write(tmp_path, build()))

    assert message in str(raised.value)
    assert "was not imported" in str(raised.value) and "nothing was changed" in str(raised.value)
    assert snapshot() == before


def test_a_problem_late_in_the_file_rolls_back_everything_before_it(tmp_path):
    data = example()
    data["balance"]["refillIntervalValue"] = "monthly"

    with pytest.raises(LibreChatImportError) as raised:
        import_librechat_yaml(write(tmp_path, data))

    assert raised.value.problems == ["balance.refillIntervalValue: expected a whole number, got the text 'monthly'."]
    assert not Endpoint.objects.exists() and not ModelSpec.objects.exists()
    assert Role.objects.default().start_balance == Decimal(20000)


def test_every_problem_of_a_file_is_listed_at_once(tmp_path):
    data = example()
    data["endpoints"]["custom"][0]["titleTiming"] = "later"
    data["endpoints"]["custom"][0]["titlePrompt"] = "no placeholder"
    data["endpoints"]["custom"][2]["tokenConfig"] = {
        "gemma-7b-it": {"prompt": "cheap", "completion": 1, "context": 8192}
    }

    with pytest.raises(LibreChatImportError) as raised:
        import_librechat_yaml(write(tmp_path, data))

    assert raised.value.problems == [
        "endpoints.custom[0] (xai).titleTiming: Value 'later' is not a valid choice. Valid values: immediate, final.",
        "endpoints.custom[0] (xai).titlePrompt: titlePrompt must contain the {convo} placeholder.",
        "endpoints.custom[2] (groq).tokenConfig.gemma-7b-it.prompt: expected a number, got the text 'cheap'.",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("endpoints:\n  custom:\n    - name: [xai\n", "YAML syntax error at line 4, column 1"),
        ("endpoints:\n\tcustom: []\n", "YAML syntax error at line 2, column 1"),
        ("- just\n- a list\n", "The file must hold a YAML mapping (key: value) at the top, not a list."),
        ("", "The file is empty."),
    ],
    ids=["unclosed bracket", "tab indentation", "a list", "empty"],
)
def test_a_file_that_is_not_valid_yaml_is_refused(tmp_path, text, message):
    path = tmp_path / "librechat.yaml"
    path.write_text(text)

    with pytest.raises(CommandError) as raised:
        run(path)

    assert message in str(raised.value)
    assert not Endpoint.objects.exists()


def test_a_missing_file_is_refused_with_its_path(tmp_path):
    with pytest.raises(CommandError, match="no-such.yaml: no such file"):
        run(tmp_path / "no-such.yaml")


def test_the_command_exits_non_zero_and_prints_the_problem(tmp_path):
    path = tmp_path / "librechat.yaml"
    path.write_text("endpoints:\n  custom: [\n")
    env = {**os.environ, "ATRIUM_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}

    result = subprocess.run(
        [sys.executable, "manage.py", "import_librechat_yaml", str(path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 1
    assert "was not imported (1 problem); nothing was changed" in result.stderr
    assert "YAML syntax error at line 3, column 1" in result.stderr
    assert "Traceback" not in result.stderr


# --- dry run ---------------------------------------------------------------------------------------

def test_a_dry_run_reports_everything_and_saves_nothing():
    before = snapshot()

    output = run(FULL, "--dry-run")

    assert "— dry run" in output
    assert "12 created, 3 updated, 0 unchanged, 10 skipped." in output
    assert "Dry run: everything was validated, nothing was saved." in output
    assert snapshot() == before


def test_a_dry_run_still_refuses_an_invalid_file(tmp_path):
    data = example()
    data["endpoints"]["custom"][2]["titlePrompt"] = "no placeholder"

    with pytest.raises(CommandError, match=r"endpoints\.custom\[2\] \(groq\)\.titlePrompt"):
        run(write(tmp_path, data), "--dry-run")


def test_a_dry_run_after_an_import_reports_what_would_change(tmp_path):
    run(EXAMPLE)
    data = example()
    data["endpoints"]["custom"][0]["modelDisplayLabel"] = "Grok"

    output = run(write(tmp_path, data), "--dry-run")

    assert "endpoint 'xai'  [endpoints.custom[0] (xai)] — modelDisplayLabel" in output
    assert endpoint("xai").model_display_label == "xAI"


def test_a_built_in_kind_an_admin_already_configured_is_updated_under_its_own_name(tmp_path):
    Endpoint.objects.create(name="OpenAI (company)", kind=Kind.OPENAI, api_key="${COMPANY_OPENAI_KEY}")
    data = example()
    data["endpoints"]["openAI"] = {"titleModel": "gpt-4o-mini", "apiKey": "${COMPANY_OPENAI_KEY}"}

    output = run(write(tmp_path, data))

    company = endpoint("OpenAI (company)")
    assert Endpoint.objects.filter(kind=Kind.OPENAI).count() == 1
    assert company.title_model == "gpt-4o-mini"
    assert ModelSpec.objects.get(name="gpt-4o").endpoint == company
    assert "endpoint 'OpenAI (company)'  [endpoints.openAI] — " in output


def test_a_title_endpoint_may_name_a_built_in_the_specs_create(tmp_path):
    data = example()
    data["endpoints"]["custom"][2]["titleEndpoint"] = "openAI"

    run(write(tmp_path, data))

    assert endpoint("groq").title_endpoint == endpoint("openAI")


def test_an_unknown_title_endpoint_is_skipped_with_the_reason(tmp_path):
    data = example()
    data["endpoints"]["custom"][2]["titleEndpoint"] = "nowhere"

    output = run(write(tmp_path, data))

    assert endpoint("groq").title_endpoint is None
    assert (
        "endpoints.custom[2] (groq).titleEndpoint — 'nowhere' is not a configured endpoint; titles use this endpoint"
        in output
    )


def test_a_name_taken_by_an_endpoint_of_another_kind_is_refused(tmp_path):
    Endpoint.objects.create(name="groq", kind=Kind.AZURE_OPENAI, base_url="https://x.openai.azure.com/openai/deployments",
                            api_key="${AZ}")

    with pytest.raises(CommandError) as raised:
        run(EXAMPLE)

    assert ("endpoints.custom[2] (groq): the name 'groq' is already taken by an endpoint of kind azureOpenAI in the "
            "database; rename one of them.") in str(raised.value)
    assert Endpoint.objects.count() == 1


def test_a_currency_may_be_given_as_a_bare_code(tmp_path):
    data = example()
    data["interface"]["currency"] = "CHF"

    output = run(write(tmp_path, data))

    assert PortalSettings.load().currency_code == "CHF"
    assert "portal settings (display currency)  [interface.currency] — code" in output


def test_a_spec_for_a_model_no_azure_group_serves_is_skipped(tmp_path):
    data = yaml.safe_load(FULL.read_text())
    data["modelSpecs"]["list"][1]["preset"]["model"] = "o3"

    output = run(write(tmp_path, data))

    assert not ModelSpec.objects.filter(name="azure-4o").exists()
    assert "modelSpecs.list[1] (azure-4o) — preset.endpoint azureOpenAI: no Azure group offers the model 'o3'" in output


@pytest.mark.parametrize(
    "group, message",
    [
        (
            {"group": "g", "apiKey": "${K}", "instanceName": "i", "models": {"m": True}},
            (
                "endpoints.azureOpenAI.groups[0] (g).version: "
                "version is required (sent as the api-version query parameter)."
            ),
        ),
        (
            {"group": "g", "apiKey": "${K}", "version": "2024-10-21", "models": {"m": True}},
            "endpoints.azureOpenAI.groups[0] (g).instanceName: instanceName (or baseURL) is required.",
        ),
        (
            {"group": "g", "apiKey": "${K}", "instanceName": "i", "version": "2024-10-21"},
            "endpoints.azureOpenAI.groups[0] (g).models: models is required",
        ),
        (
            {"group": "g", "apiKey": "${K}", "instanceName": "i", "version": "2024-10-21", "models": {"m": "yes"}},
            (
                "endpoints.azureOpenAI.groups[0] (g).models.m: "
                "expected true or {deploymentName, version}, got the text 'yes'."
            ),
        ),
        (
            {
                "group": "g",
                "apiKey": "${K}",
                "version": "v",
                "baseURL": "https://gw/${DEPLOYMENT_NAME}/x",
                "models": {"m": True},
            },
            (
                "endpoints.azureOpenAI.groups[0] (g).baseURL: "
                "${DEPLOYMENT_NAME} is supported only as the last path segment"
            ),
        ),
        (
            {"group": "g", "instanceName": "i", "version": "v", "models": {"m": True}},
            "endpoints.azureOpenAI.groups[0] (g).apiKey: An API key is required",
        ),
    ],
    ids=["no version", "no instance", "no models", "bad model", "deployment mid-path", "no key"],
)
def test_an_incomplete_azure_group_is_refused(tmp_path, group, message):
    data = {"endpoints": {"azureOpenAI": {"groups": [group]}}}

    with pytest.raises(CommandError) as raised:
        run(write(tmp_path, data))

    assert message in str(raised.value)
    assert not Endpoint.objects.exists()
