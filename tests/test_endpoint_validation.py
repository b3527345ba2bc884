"""The foundation's rules: endpoints/config.py, Endpoint/EndpointModel/ModelSpec.clean, `${VAR}`
resolution, secrets at rest and in logs, and role defaults."""
from __future__ import annotations

import logging
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.models import PERMISSIONS, Role, User
from endpoints import config
from endpoints.models import Endpoint, EndpointModel, Kind, ModelSpec, Protocol, UserProviderKey
from portal import crypto
from portal.logging import RedactSecretsFilter, redact


def messages(exc_info) -> list[str]:
    return exc_info.value.messages


def field_errors(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        instance.full_clean()
    return raised.value.message_dict


def custom(**fields) -> Endpoint:
    values = {"name": "Mine", "base_url": "https://llm.example.com/v1", "api_key": "${MINE_KEY}"} | fields
    return Endpoint(**values)


# --- names -------------------------------------------------------------------------------------

RESERVED_SPELLINGS = [
    name for reserved in config.RESERVED_NAMES for name in (reserved, reserved.upper(), reserved.lower())
]


@pytest.mark.parametrize("name", RESERVED_SPELLINGS)
def test_a_custom_endpoint_may_not_take_a_reserved_name_in_any_case(name):
    with pytest.raises(ValidationError) as raised:
        config.validate_endpoint_name(name, "custom")

    assert messages(raised) == [
        f"'{name}' is a reserved endpoint name (openAI, azureOpenAI, google, anthropic, assistants, "
        "azureAssistants, agents, bedrock). Give the endpoint a unique name; to reuse a built-in icon set "
        "iconURL to the built-in key instead."
    ]


def test_a_built_in_kind_may_carry_its_own_reserved_name():
    config.validate_endpoint_name("openAI", Kind.OPENAI)
    config.validate_endpoint_name("ANTHROPIC", Kind.ANTHROPIC)

    with pytest.raises(ValidationError, match="'anthropic' is a reserved endpoint name"):
        config.validate_endpoint_name("anthropic", Kind.OPENAI)


@pytest.mark.parametrize("name", ["", "   "])
def test_an_endpoint_needs_a_name(name):
    with pytest.raises(ValidationError) as raised:
        config.validate_endpoint_name(name, "custom")

    assert messages(raised) == ["name is required."]


def test_names_that_merely_contain_a_reserved_word_are_fine():
    config.validate_endpoint_name("openAI-proxy", "custom")
    config.validate_endpoint_name("My Anthropic", "custom")


@pytest.mark.django_db
def test_endpoint_names_are_unique_without_regard_to_case():
    Endpoint.objects.create(name="Groq", base_url="https://api.groq.com/openai/v1", api_key="${GROQ_API_KEY}")

    assert field_errors(custom(name="groq")) == {
        "__all__": ["An endpoint with this name already exists (names are case-insensitive)."]
    }


# --- ${ENV} forms -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value",
    ["${OPENAI_API_KEY}", "${_PRIVATE}", "${KEY_2}", "user_provided", "sk-literal-secret-123", "prefix-${A}-${B}", ""],
)
def test_well_formed_api_keys_pass(value):
    config.validate_api_key(value)


@pytest.mark.parametrize("value", ["${OPENAI_API_KEY", "${1ABC}", "${}", "${WITH-DASH}", "${A B}", "x${"])
def test_a_malformed_environment_reference_is_refused(value):
    with pytest.raises(ValidationError) as raised:
        config.validate_api_key(value)

    assert messages(raised) == [
        f"apiKey: malformed environment reference in {value!r}; write it as ${{VARIABLE_NAME}} "
        "(letters, digits and underscores, not starting with a digit)."
    ]


def test_a_bare_dollar_variable_is_refused_with_the_right_spelling():
    with pytest.raises(ValidationError) as raised:
        config.validate_api_key("$OPENAI_API_KEY")

    assert messages(raised) == [
        "apiKey: '$OPENAI_API_KEY' looks like an environment variable; write it as ${OPENAI_API_KEY} "
        "to read it from the environment."
    ]


def test_user_provided_is_recognised_with_surrounding_space():
    assert config.is_user_provided(" user_provided ")
    assert not config.is_user_provided("user_provided_key")
    assert not config.is_user_provided(None)


@pytest.mark.parametrize(
    "value",
    [
        "https://api.x.ai/v1",
        "http://127.0.0.1:11434/v1",
        "${BASE_URL}",
        "${BASE}/v1",
        "https://${HOST}/v1",
        "user_provided",
    ],
)
def test_well_formed_base_urls_pass(value):
    config.validate_base_url(value, required=True)


@pytest.mark.parametrize("value", ["api.openai.com/v1", "ftp://files.example.com", "//host/v1", "https:// spaced"])
def test_a_base_url_must_be_http_or_a_reference(value):
    with pytest.raises(ValidationError) as raised:
        config.validate_base_url(value, required=True)

    assert messages(raised) == [
        f"baseURL must be an http(s) URL, a ${{ENV_VAR}} reference or user_provided; got {value!r}."
    ]


def test_a_malformed_reference_in_a_base_url_is_refused():
    with pytest.raises(ValidationError, match=r"baseURL: malformed environment reference in 'https://\$\{HOST/v1'"):
        config.validate_base_url("https://${HOST/v1", required=True)


def test_a_base_url_is_required_only_where_the_kind_needs_one():
    config.validate_base_url("", required=False)
    with pytest.raises(ValidationError) as raised:
        config.validate_base_url("", required=True)

    assert messages(raised) == ["baseURL is required for this endpoint (a URL, ${ENV_VAR} or user_provided)."]


# --- ${VAR} resolution ---------------------------------------------------------------------------

def test_references_are_resolved_from_the_given_environment():
    environ = {"HOST": "llm.example.com", "VERSION": "v1"}

    assert config.resolve_env("https://${HOST}/${VERSION}", environ) == "https://llm.example.com/v1"
    assert config.resolve_env("no references", environ) == "no references"
    assert config.resolve_env("", environ) == ""
    assert config.env_references("${A}-${B}-$C") == ["A", "B"]


def test_references_are_resolved_from_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("ATRIUM_TEST_KEY", "sk-from-the-environment")

    assert config.resolve_env("${ATRIUM_TEST_KEY}") == "sk-from-the-environment"


def test_a_missing_variable_is_an_error_that_names_it_and_nothing_else():
    with pytest.raises(config.MissingEnvironmentVariable) as raised:
        config.resolve_env("Bearer ${ABSENT_KEY}", {"OTHER": "sk-should-not-appear"})

    assert raised.value.name == "ABSENT_KEY"
    assert str(raised.value) == "Environment variable ABSENT_KEY is not set on the Atrium server."


def test_an_empty_variable_resolves_to_empty_text():
    assert config.resolve_env("${EMPTY}", {"EMPTY": ""}) == ""


# --- titles ---------------------------------------------------------------------------------------

def test_a_title_prompt_must_contain_convo():
    config.validate_title_prompt("Title for:\n{convo}")
    config.validate_title_prompt("")
    with pytest.raises(ValidationError) as raised:
        config.validate_title_prompt("Title for: {conversation}")

    assert messages(raised) == ["titlePrompt must contain the {convo} placeholder."]


@pytest.mark.parametrize(
    "template, missing",
    [("User: {input}", "{output}"), ("AI: {output}", "{input}"), ("nothing", "{input}, {output}")],
)
def test_a_title_prompt_template_must_contain_input_and_output(template, missing):
    with pytest.raises(ValidationError) as raised:
        config.validate_title_prompt_template(template)

    assert messages(raised) == [
        f"titlePromptTemplate must contain the {{input}} and {{output}} placeholders (missing {missing})."
    ]


def test_a_complete_title_prompt_template_passes():
    config.validate_title_prompt_template("Q: {input}\nA: {output}")


# --- headers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("field", config.USER_FIELDS)
def test_every_librechat_user_placeholder_is_known(field):
    config.validate_headers({"X-User": f"{{{{LIBRECHAT_USER_{field}}}}}"})


@pytest.mark.parametrize("field", config.BODY_FIELDS)
def test_every_librechat_body_placeholder_is_known(field):
    config.validate_headers({"X-Body": f"{{{{LIBRECHAT_BODY_{field}}}}}"})


def test_headers_may_mix_references_placeholders_and_text():
    config.validate_headers({
        "Authorization": "Bearer ${GATEWAY_KEY}",
        "X-Meta": '{"user":"{{LIBRECHAT_USER_EMAIL}}","convo":"{{LIBRECHAT_BODY_CONVERSATIONID}}"}',
    })
    config.validate_headers({})
    config.validate_headers(None)


@pytest.mark.parametrize(
    "value, message",
    [
        (2023, "headers: the value of 'anthropic-version' must be a string (got int 2023); put the value in quotes."),
        (True, "headers: the value of 'anthropic-version' must be a string (got bool True); put the value in quotes."),
        (1.5, "headers: the value of 'anthropic-version' must be a string (got float 1.5); put the value in quotes."),
        (
            None,
            "headers: the value of 'anthropic-version' must be a string (got NoneType None); put the value in quotes.",
        ),
    ],
)
def test_header_values_must_be_strings(value, message):
    with pytest.raises(ValidationError) as raised:
        config.validate_headers({"anthropic-version": value})

    assert messages(raised) == [message]


def test_unknown_user_and_body_placeholders_are_refused_with_the_known_ones():
    with pytest.raises(ValidationError) as raised:
        config.validate_headers({"X-Size": "{{LIBRECHAT_USER_SHOESIZE}}"})
    assert messages(raised)[0].startswith(
        "headers.X-Size: unknown placeholder {{LIBRECHAT_USER_SHOESIZE}}; "
        "known: LIBRECHAT_USER_ID, LIBRECHAT_USER_NAME,"
    )

    with pytest.raises(ValidationError) as raised:
        config.validate_headers({"X-Thread": "{{LIBRECHAT_BODY_THREADID}}"})
    assert messages(raised) == [
        "headers.X-Thread: unknown placeholder {{LIBRECHAT_BODY_THREADID}}; known: LIBRECHAT_BODY_CONVERSATIONID, "
        "LIBRECHAT_BODY_PARENTMESSAGEID, LIBRECHAT_BODY_MESSAGEID."
    ]


@pytest.mark.parametrize("placeholder", ["{{LIBRECHAT_SESSION_ID}}", "{{LIBRECHAT_}}", "{{LIBRECHAT_USER}}"])
def test_a_librechat_placeholder_of_no_known_group_is_refused(placeholder):
    with pytest.raises(ValidationError) as raised:
        config.validate_headers({"X-Any": placeholder})

    assert messages(raised) == [
        f"headers.X-Any: unknown placeholder {placeholder}; use {{{{LIBRECHAT_USER_<FIELD>}}}} or "
        "{{LIBRECHAT_BODY_<FIELD>}}."
    ]


def test_header_names_must_be_tokens_and_headers_an_object():
    with pytest.raises(ValidationError) as raised:
        config.validate_headers({"Bad Header": "x"})
    assert messages(raised) == ["headers: 'Bad Header' is not a valid HTTP header name."]

    with pytest.raises(ValidationError) as raised:
        config.validate_headers(["X-Team: a"])
    assert messages(raised) == ["headers must be an object of header name → string value."]


def test_a_malformed_reference_in_a_header_names_the_header():
    with pytest.raises(
        ValidationError, match=r"headers\.Authorization: malformed environment reference in .Bearer \$\{KEY."
    ):
        config.validate_headers({"Authorization": "Bearer ${KEY"})


# --- params -----------------------------------------------------------------------------------------

def test_add_params_must_be_an_object_of_anything():
    config.validate_add_params(
        {"web_search": True, "stop": ["x"], "metadata": {"team": "a"}, "nested": {"a": {"b": None}}}
    )
    with pytest.raises(ValidationError) as raised:
        config.validate_add_params(["web_search"])

    assert messages(raised) == ["addParams must be an object (key → value) merged into every request body."]


@pytest.mark.parametrize("key", ["messages", "model", "stream", "stream_options", "user", "tools", "system", "input"])
def test_add_params_may_not_set_what_the_portal_sends(key):
    with pytest.raises(ValidationError) as raised:
        config.validate_add_params({"web_search": True, key: []})

    assert messages(raised) == [
        f"addParams may not set {key}: Atrium sets this field on every request itself (the conversation's "
        "messages, the model, streaming, usage, the user). Remove it from addParams."
    ]


def test_add_params_name_every_portal_field_they_try_to_set():
    with pytest.raises(ValidationError) as raised:
        config.validate_add_params({"stream": False, "model": "x", "messages": [], "top_k": 3})

    assert messages(raised)[0].startswith("addParams may not set messages, model, stream: Atrium sets these fields")


@pytest.mark.parametrize("value", ["stop", ["stop", 1], ["stop", ""], {"stop": True}])
def test_drop_params_must_be_a_list_of_names(value):
    with pytest.raises(ValidationError) as raised:
        config.validate_drop_params(value)

    assert messages(raised) == ['dropParams must be a list of parameter names, e.g. ["stop", "user"].']


def test_query_params_must_be_an_object_of_values():
    config.validate_string_map({"api-version": "2024-10-21"}, "query params")
    with pytest.raises(ValidationError, match="query params must be an object of name → string value."):
        config.validate_string_map({"api-version": ["2024"]}, "query params")


def test_full_custom_params_are_accepted():
    parsed = config.validate_custom_params({
        "defaultParamsEndpoint": "anthropic",
        "reasoningFormat": "reasoning_object",
        "reasoningKey": "reasoning_content",
        "paramDefinitions": [{"key": "temperature", "default": 0.2}],
    })

    assert (parsed.reasoningFormat, parsed.reasoningKey, parsed.paramDefinitions[0].key) == (
        "reasoning_object", "reasoning_content", "temperature")


@pytest.mark.parametrize(
    "value, message",
    [
        ({"reasoningFormat": "loud"}, "customParams.reasoningFormat: Input should be 'reasoning_effort', "
                                      "'reasoning_object' or 'disabled' (got 'loud')"),
        ({"reasoningKey": "thoughts"}, "customParams.reasoningKey: Input should be 'reasoning' or "
                                       "'reasoning_content' (got 'thoughts')"),
        ({"reasoning": "x"}, "customParams.reasoning is not a known key (defaultParamsEndpoint, reasoningFormat, "
                             "reasoningKey, paramDefinitions)"),
        ({"paramDefinitions": [{"default": 1}]}, "customParams.paramDefinitions.0.key: Field required"),
        ("reasoning", "customParams must be an object."),
    ],
)
def test_custom_params_enums_and_keys_are_checked(value, message):
    with pytest.raises(ValidationError) as raised:
        config.validate_custom_params(value)

    assert messages(raised) == [message]


# --- Endpoint.clean ---------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value, valid",
    [
        ("title_timing", "later", "immediate, final"),
        ("title_method", "magic", "completion, structured, functions"),
        ("title_message_role", "tool", "system, user, assistant"),
        ("provider", "cohere", "openai_chat, anthropic, openai_responses"),
        ("kind", "mistral", "openAI, azureOpenAI, anthropic, bedrock, google, custom"),
    ],
)
def test_enum_fields_take_only_their_values(field, value, valid):
    errors = field_errors(custom(**{field: value}))

    assert errors[field] == [f"Value '{value}' is not a valid choice."]
    for choice in valid.split(", "):
        custom_endpoint = custom(**{field: choice})
        if field == "kind" and choice != "custom":
            custom_endpoint.name = choice
        if field == "kind" and choice == "anthropic":
            custom_endpoint.provider = Protocol.ANTHROPIC
        custom_endpoint.full_clean()


@pytest.mark.django_db
def test_endpoint_clean_keys_each_problem_by_field():
    errors = field_errors(custom(
        name="agents", api_key="${BROKEN", base_url="not a url", title_prompt="no placeholder",
        title_prompt_template="{input} only", headers={"X": 1}, add_params=["x"], drop_params="stop",
        custom_params={"reasoningKey": "x"}, query_params=[1],
    ))

    assert set(errors) == {
        "name", "api_key", "base_url", "title_prompt", "title_prompt_template", "headers", "add_params",
        "drop_params", "custom_params", "query_params",
    }
    assert errors["title_prompt"] == ["titlePrompt must contain the {convo} placeholder."]


@pytest.mark.django_db
def test_models_fetch_is_not_available_with_the_anthropic_protocol():
    errors = field_errors(custom(provider=Protocol.ANTHROPIC, models_fetch=True))

    assert errors == {"models_fetch": [
        "models.fetch is not available with the Anthropic protocol; list the models explicitly."
    ]}


@pytest.mark.django_db
def test_an_anthropic_endpoint_speaks_the_anthropic_protocol():
    errors = field_errors(Endpoint(name="anthropic", kind=Kind.ANTHROPIC, api_key="${ANTHROPIC_API_KEY}"))
    assert errors == {"provider": ["An anthropic endpoint uses the Anthropic protocol."]}

    saved = Endpoint(name="anthropic", kind=Kind.ANTHROPIC, api_key="${ANTHROPIC_API_KEY}")
    saved.save()
    assert saved.provider == Protocol.ANTHROPIC


@pytest.mark.django_db
def test_built_in_kinds_may_leave_the_base_url_to_the_official_one():
    openai = Endpoint(name="openAI", kind=Kind.OPENAI, api_key="${OPENAI_API_KEY}")
    openai.full_clean()
    assert openai.effective_base_url == "https://api.openai.com/v1"

    for kind in (Kind.CUSTOM, Kind.AZURE_OPENAI, Kind.BEDROCK):
        endpoint = custom(name=f"x-{kind}", kind=kind, base_url="")
        assert field_errors(endpoint)["base_url"] == [
            "baseURL is required for this endpoint (a URL, ${ENV_VAR} or user_provided)."
        ]


@pytest.mark.django_db
def test_a_direct_endpoint_needs_its_url():
    errors = field_errors(Endpoint(name="openAI", kind=Kind.OPENAI, api_key="${K}", direct_endpoint=True))

    assert errors == {"direct_endpoint": ["directEndpoint needs a baseURL (the full completion URL)."]}


@pytest.mark.django_db
def test_an_api_key_is_required_unless_the_server_needs_no_auth():
    assert field_errors(custom(api_key="")) == {"api_key": [
        "An API key is required (a secret, ${ENV_VAR} or user_provided), or set auth to 'None (local server)'."
    ]}
    custom(api_key="", auth_kind="none").full_clean()


@pytest.mark.django_db
def test_the_title_endpoint_must_be_another_endpoint():
    endpoint = custom()
    endpoint.save()
    endpoint.title_endpoint = endpoint

    assert field_errors(endpoint) == {
        "title_endpoint": ["titleEndpoint must be another endpoint (leave empty for this one)."]
    }


# --- EndpointModel.clean: rates -----------------------------------------------------------------------

@pytest.fixture
def groq(db):
    return Endpoint.objects.create(name="groq", base_url="https://api.groq.com/openai/v1", api_key="${GROQ_API_KEY}")


REQUIRED = "Required in a token rate (tokenConfig needs prompt, completion and context)."


@pytest.mark.parametrize(
    "given, missing",
    [
        ({"prompt_rate": Decimal(1)}, {"completion_rate", "context_tokens"}),
        ({"prompt_rate": Decimal(1), "completion_rate": Decimal(2)}, {"context_tokens"}),
        ({"context_tokens": 8192}, {"prompt_rate", "completion_rate"}),
        ({"cache_read_rate": Decimal("0.1")}, {"prompt_rate", "completion_rate", "context_tokens"}),
        ({"cache_write_rate": Decimal("1")}, {"prompt_rate", "completion_rate", "context_tokens"}),
    ],
)
def test_a_rate_needs_prompt_completion_and_context(groq, given, missing):
    errors = field_errors(EndpointModel(endpoint=groq, name="llama", **given))

    assert errors == {field: [REQUIRED] for field in missing}


def test_a_model_without_rates_or_with_the_three_required_ones_is_valid(groq):
    EndpointModel(endpoint=groq, name="unpriced").full_clean()
    EndpointModel(
        endpoint=groq, name="priced", prompt_rate=Decimal("0.05"), completion_rate=Decimal("0.08"), context_tokens=8192
    ).full_clean()


def test_rates_are_never_negative(groq):
    errors = field_errors(EndpointModel(
        endpoint=groq, name="llama", prompt_rate=Decimal(-1), completion_rate=Decimal(1), context_tokens=1
    ))

    assert errors == {"prompt_rate": ["Ensure this value is greater than or equal to 0."]}


# --- ModelSpec.clean -----------------------------------------------------------------------------------

def test_a_spec_must_name_a_model_its_endpoint_lists(groq):
    EndpointModel.objects.create(endpoint=groq, name="llama3-8b-8192")
    EndpointModel.objects.create(endpoint=groq, name="gemma-7b-it")

    errors = field_errors(ModelSpec(name="s", label="S", endpoint=groq, model="gpt-4o"))

    assert errors == {"model": ["'gpt-4o' is not a model of endpoint 'groq' (known: gemma-7b-it, llama3-8b-8192)."]}
    ModelSpec(name="s", label="S", endpoint=groq, model="gemma-7b-it").full_clean()


def test_a_spec_on_an_endpoint_that_fetches_its_models_may_name_any_model(groq):
    EndpointModel.objects.create(endpoint=groq, name="llama3-8b-8192")
    groq.models_fetch = True
    groq.save()

    ModelSpec(name="s", label="S", endpoint=groq, model="brand-new-model").full_clean()


def test_only_one_spec_is_the_default(groq):
    ModelSpec.objects.create(name="first", label="First", endpoint=groq, model="m", is_default=True)

    errors = field_errors(ModelSpec(name="second", label="Second", endpoint=groq, model="m", is_default=True))

    assert errors == {"is_default": ["'First' is already the default model spec."]}


def test_a_spec_preset_is_checked(groq):
    errors = field_errors(ModelSpec(
        name="s", label="S", endpoint=groq, model="m", temperature=Decimal(3), top_p=Decimal("1.5"),
        reasoning_effort="extreme", extra_params=["x"],
    ))

    assert errors["temperature"] == ["Ensure this value is less than or equal to 2."]
    assert errors["top_p"] == ["Ensure this value is less than or equal to 1."]
    assert errors["reasoning_effort"] == ["Value 'extreme' is not a valid choice."]
    assert errors["extra_params"] == ["Must be an object of parameter → value."]


# --- secrets --------------------------------------------------------------------------------------------

def raw(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_an_endpoint_key_is_encrypted_in_the_database_column():
    endpoint = custom(api_key="sk-proj-PLAINTEXTSECRET-0123456789")
    endpoint.save()

    stored = raw("endpoints_endpoint", "api_key", endpoint.pk)

    assert stored.startswith("fernet:")
    assert "PLAINTEXTSECRET" not in stored
    assert crypto.decrypt(stored) == "sk-proj-PLAINTEXTSECRET-0123456789"
    assert Endpoint.objects.get(pk=endpoint.pk).api_key == "sk-proj-PLAINTEXTSECRET-0123456789"


@pytest.mark.django_db
def test_a_users_own_key_and_base_url_are_encrypted_in_the_database(make_user):
    user = make_user()
    endpoint = custom(api_key="user_provided", base_url="user_provided")
    endpoint.save()
    key = UserProviderKey.objects.create(
        user=user, endpoint=endpoint, api_key="sk-user-OWNSECRET-99999", base_url="https://private.example.com/v1"
    )

    assert "OWNSECRET" not in raw("endpoints_userproviderkey", "api_key", key.pk)
    assert "private.example.com" not in raw("endpoints_userproviderkey", "base_url", key.pk)
    assert "OWNSECRET" not in repr(key) and repr(key).endswith("key=••••••••9999>")


@pytest.mark.django_db
def test_repr_masks_a_literal_key_and_shows_references():
    literal = custom(api_key="sk-proj-PLAINTEXTSECRET-0123456789")
    literal.save()

    assert "PLAINTEXTSECRET" not in repr(literal)
    assert repr(literal).endswith("key=••••••••6789>")
    assert "key=${MINE_KEY}" in repr(custom(name="Ref"))
    assert "key=user_provided" in repr(custom(name="Own", api_key="user_provided"))
    assert "PLAINTEXTSECRET" not in str(literal)


def test_masks_never_reveal_a_short_secret():
    assert crypto.mask("") == ""
    assert crypto.mask("short-key") == "••••••••"
    assert crypto.mask("sk-0123456789abcdef") == "••••••••cdef"


def capture_log(emit) -> str:
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("atrium.tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize(
    "message, secret",
    [
        ("calling with Authorization: Bearer abcdef123456XYZ", "abcdef123456XYZ"),
        ("headers {'x-api-key': 'anthropic-secret-value'}", "anthropic-secret-value"),
        ('body {"api_key": "plain-secret-value"}', "plain-secret-value"),
        ("api-key=azure0123456789secret", "azure0123456789secret"),
        ("password: hunter2hunter2", "hunter2hunter2"),
        ("key sk-proj-0123456789abcdefABCDEF leaked", "sk-proj-0123456789abcdefABCDEF"),
        ("key sk-ant-api03-0123456789abcdef leaked", "sk-ant-api03-0123456789abcdef"),
        ("groq gsk_0123456789abcdefghij", "gsk_0123456789abcdefghij"),
        ("gemini AIzaSyA0123456789abcdefghijklmnopqrstuv", "AIzaSyA0123456789abcdefghijklmnopqrstuv"),
    ],
)
def test_the_log_filter_blanks_credentials(message, secret):
    output = capture_log(lambda log: log.warning(message))

    assert secret not in output
    assert "[redacted]" in output


def test_the_log_filter_blanks_credentials_passed_as_arguments():
    output = capture_log(lambda log: log.info("upstream %s answered %d", "Bearer sk-0123456789abcdef", 401))

    assert "sk-0123456789abcdef" not in output
    assert output == "INFO upstream Bearer [redacted] answered 401\n"


def test_the_log_filter_blanks_credentials_inside_a_traceback():
    def emit(log):
        try:
            raise RuntimeError("provider refused key sk-proj-SECRETINTRACEBACK1234")
        except RuntimeError:
            log.exception("call failed")

    output = capture_log(emit)

    assert "SECRETINTRACEBACK" not in output
    assert "Traceback (most recent call last)" in output and "RuntimeError: provider refused key [redacted]" in output


def test_the_log_filter_leaves_ordinary_text_alone():
    text = "prompt_tokens=12 completion_tokens=40 max_tokens: 4096 model=gpt-4o"

    assert redact(text) == text


def test_the_configured_console_handler_uses_the_filter(settings):
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["redact"]
    assert settings.LOGGING["filters"]["redact"]["()"] == "portal.logging.RedactSecretsFilter"


# --- roles ---------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_user_is_the_default_role_with_librechats_user_permissions():
    role = Role.objects.default()

    assert role.name == Role.USER and role.is_default
    assert {field: getattr(role, field) for field, _, _ in PERMISSIONS} == {
        field: default for field, _, default in PERMISSIONS
    }
    admin = Role.objects.get(name=Role.ADMIN)
    assert all(getattr(admin, field) for field, _, _ in PERMISSIONS)
    assert not admin.is_default


@pytest.mark.django_db
def test_a_new_user_gets_the_default_role_and_the_first_superuser_gets_admin(make_user):
    superuser = User.objects.create_superuser("first", "first@example.com", "pw-For-tests-1")

    assert superuser.role.name == Role.ADMIN
    assert make_user().role.name == Role.USER


@pytest.mark.django_db
def test_a_role_an_admin_makes_the_default_is_given_to_new_users(make_user):
    Role.objects.filter(name=Role.USER).update(is_default=False)
    staff = Role.objects.create(name="STAFF", is_default=True)

    assert Role.objects.default() == staff
    assert make_user().role == staff
    assert make_user(role=Role.objects.get(name=Role.ADMIN)).role.name == Role.ADMIN


@pytest.mark.django_db
def test_only_one_role_is_the_default():
    errors = field_errors(Role(name="OTHER", is_default=True))

    assert errors == {"is_default": ["'User' is already the default role."]}


@pytest.mark.django_db
@pytest.mark.parametrize("name", [Role.USER, Role.ADMIN])
def test_built_in_roles_cannot_be_deleted_one_by_one_or_in_bulk(name):
    role = Role.objects.get(name=name)

    with pytest.raises(ValidationError, match=f"The built-in role {name} cannot be deleted."):
        role.delete()
    with pytest.raises(ValidationError, match=f"The built-in role {name} cannot be deleted."):
        Role.objects.filter(name=name).delete()
    with pytest.raises(ValidationError, match="The built-in role ADMIN and USER cannot be deleted."):
        Role.objects.all().delete()
    assert Role.objects.filter(name=name).exists()


@pytest.mark.django_db
def test_other_roles_can_be_deleted():
    Role.objects.create(name="CONTRACTORS")

    Role.objects.filter(name="CONTRACTORS").delete()

    assert not Role.objects.filter(name="CONTRACTORS").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", [Role.USER, Role.ADMIN])
def test_built_in_roles_cannot_be_renamed(name):
    role = Role.objects.get(name=name)
    role.name = "EVERYONE"

    assert field_errors(role) == {"name": [f"The built-in role {name} cannot be renamed."]}
    with pytest.raises(ValidationError):
        role.save()
    assert Role.objects.filter(name=name).exists()


@pytest.mark.django_db
def test_role_names_are_unique_without_regard_to_case():
    assert field_errors(Role(name="user")) == {
        "__all__": ["A role with this name already exists (names are case-insensitive)."]
    }


@pytest.mark.django_db
def test_auto_refill_needs_an_interval_of_at_least_one():
    role = Role(name="REFILL", auto_refill_enabled=True, refill_interval_value=0)

    assert field_errors(role) == {"refill_interval_value": ["The refill interval must be at least 1."]}
