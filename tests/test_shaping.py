"""Request shaping (SPEC §1.1): what the upstream receives for each rule of the endpoint object."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from endpoints.adapters.types import ChatMessage, StreamError
from endpoints.models import AuthKind, EndpointModel, Kind, Protocol, UserProviderKey
from tests.streaming import final, run_chat, text_of


def config_error(events) -> str:
    last = final(events)
    assert isinstance(last, StreamError) and last.kind == "config", last
    return last.message


# --- ${ENV} ------------------------------------------------------------------------------------------

def test_env_references_in_key_url_and_headers_are_resolved_at_request_time(make_endpoint, upstream, monkeypatch):
    endpoint = make_endpoint(api_key="${ACME_KEY}", base_url="${ACME_URL}/v1", headers={"X-Team": "${ACME_TEAM}"})
    monkeypatch.setenv("ACME_KEY", "sk-from-env-1")
    monkeypatch.setenv("ACME_URL", upstream.url)
    monkeypatch.setenv("ACME_TEAM", "blue")
    run_chat(endpoint)
    monkeypatch.setenv("ACME_KEY", "sk-from-env-2")
    run_chat(endpoint)

    first, second = upstream.requests
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer sk-from-env-1" and first.headers["x-team"] == "blue"
    assert second.headers["authorization"] == "Bearer sk-from-env-2"


def test_a_missing_environment_variable_is_a_clear_error_and_no_request(make_endpoint, upstream, monkeypatch):
    monkeypatch.delenv("ACME_MISSING", raising=False)
    endpoint = make_endpoint("Acme", api_key="${ACME_MISSING}", base_url=upstream.base_url)

    message = config_error(run_chat(endpoint))

    assert message == ("Acme is not usable: its API key refers to the environment variable ACME_MISSING, "
                       "which is not set on the Atrium server. Ask an administrator.")
    assert upstream.requests == []


# --- headers -----------------------------------------------------------------------------------------

def test_header_placeholders_are_filled_from_the_user_and_the_request(make_endpoint, upstream, make_user):
    user = make_user("ada", email="ada@example.com", name="Ada Lovelace", auth_provider="openid",
                     openid_id="sub-123", ldap_id="", terms_accepted=True)
    endpoint = make_endpoint(
        base_url=upstream.base_url,
        headers={
            "X-User": "{{LIBRECHAT_USER_ID}}|{{LIBRECHAT_USER_USERNAME}}|{{LIBRECHAT_USER_NAME}}",
            "X-Email": "{{LIBRECHAT_USER_EMAIL}}",
            "X-Auth": "{{LIBRECHAT_USER_PROVIDER}}/{{LIBRECHAT_USER_OPENIDID}}/{{LIBRECHAT_USER_LDAPID}}",
            "X-Role": "{{LIBRECHAT_USER_ROLE}}",
            "X-Flags": (
                "{{LIBRECHAT_USER_TERMSACCEPTED}},{{LIBRECHAT_USER_EMAILVERIFIED}},{{LIBRECHAT_USER_TWOFACTORENABLED}}"
            ),
            "X-Missing": "[{{LIBRECHAT_USER_GOOGLEID}}{{LIBRECHAT_USER_GITHUBID}}]",
            "X-Conversation": "{{LIBRECHAT_BODY_CONVERSATIONID}}",
            "X-Parent": "{{LIBRECHAT_BODY_PARENTMESSAGEID}}",
            "X-Message": "{{LIBRECHAT_BODY_MESSAGEID}}",
        },
    )

    run_chat(endpoint, user, conversation_id="conv-1", parent_message_id="msg-0", message_id="msg-1")

    headers = upstream.last.headers
    assert headers["x-user"] == f"{user.pk}|ada|Ada Lovelace"
    assert headers["x-email"] == "ada@example.com"
    assert headers["x-auth"] == "openid/sub-123/"
    assert headers["x-role"] == "USER"
    assert headers["x-flags"] == "true,false,false"
    assert headers["x-missing"] == "[]"
    assert (headers["x-conversation"], headers["x-parent"], headers["x-message"]) == ("conv-1", "msg-0", "msg-1")


def test_a_user_field_cannot_inject_headers(make_endpoint, upstream, make_user):
    user = make_user(name="Eve\r\nX-Admin: yes")
    endpoint = make_endpoint(base_url=upstream.base_url, headers={"X-Name": "{{LIBRECHAT_USER_NAME}}"})

    run_chat(endpoint, user)

    assert upstream.last.headers["x-name"] == "EveX-Admin: yes" and "x-admin" not in upstream.last.headers


def test_a_configured_authorization_header_wins_over_the_api_key(make_endpoint, upstream, make_user):
    user = make_user()
    endpoint = make_endpoint(
        base_url=upstream.base_url, headers={"Authorization": "Bearer proxy-{{LIBRECHAT_USER_ID}}"}
    )

    run_chat(endpoint, user)

    assert upstream.last.headers["authorization"] == f"Bearer proxy-{user.pk}"


def test_auth_kind_none_sends_no_key(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, auth_kind=AuthKind.NONE, api_key="")

    run_chat(endpoint)

    assert "authorization" not in upstream.last.headers


def test_anthropic_with_an_access_token_uses_bearer_and_forwards_headers(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.url, provider=Protocol.ANTHROPIC, auth_kind=AuthKind.ACCESS_TOKEN,
                             api_key="ya29.token", headers={"anthropic-beta": "prompt-caching-2024-07-31"})

    run_chat(endpoint)

    headers = upstream.last.headers
    assert headers["authorization"] == "Bearer ya29.token" and "x-api-key" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"


# --- body parameters ---------------------------------------------------------------------------------

def test_add_params_are_merged_and_drop_params_removed(make_endpoint, upstream, make_user):
    endpoint = make_endpoint(
        base_url=upstream.base_url,
        add_params={"web_search": True, "provider": {"order": ["a", "b"]}, "temperature": 0.9, "top_k": 5},
        drop_params=["stop", "user", "frequency_penalty"],
    )

    run_chat(endpoint, make_user(), params={"temperature": 0.1, "stop": ["\n"], "frequency_penalty": 0.5, "top_p": 0.8})

    body = upstream.last.json
    assert body["web_search"] is True and body["provider"] == {"order": ["a", "b"]} and body["top_k"] == 5
    assert body["temperature"] == 0.9  # addParams overrides
    assert body["top_p"] == 0.8
    assert "stop" not in body and "user" not in body and "frequency_penalty" not in body


def test_drop_params_can_remove_stream_options(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, drop_params=["stream_options"])

    run_chat(endpoint)

    assert "stream_options" not in upstream.last.json


@pytest.mark.parametrize("custom_params, expected", [
    ({}, {"reasoning_effort": "high"}),
    ({"reasoningFormat": "reasoning_effort"}, {"reasoning_effort": "high"}),
    ({"reasoningFormat": "reasoning_object"}, {"reasoning": {"effort": "high", "summary": "auto"}}),
    ({"reasoningFormat": "disabled"}, {}),
])
def test_reasoning_is_sent_as_the_reasoning_format_says(make_endpoint, upstream, custom_params, expected):
    endpoint = make_endpoint(base_url=upstream.base_url, custom_params=custom_params)

    run_chat(endpoint, params={"reasoning_effort": "high"})

    body = upstream.last.json
    sent = {k: body[k] for k in ("reasoning_effort", "reasoning") if k in body}
    assert sent == expected


def test_reasoning_object_keeps_a_requested_summary(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, custom_params={"reasoningFormat": "reasoning_object"})

    run_chat(endpoint, params={"reasoning_effort": "low", "reasoning_summary": "detailed"})

    assert upstream.last.json["reasoning"] == {"effort": "low", "summary": "detailed"}


def test_disabled_reasoning_strips_reasoning_even_from_add_params(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, custom_params={"reasoningFormat": "disabled"},
                             add_params={"reasoning": {"enabled": True}, "include_reasoning": True})

    run_chat(endpoint, params={"reasoning_effort": "medium"})

    assert not {"reasoning", "reasoning_effort", "include_reasoning"} & set(upstream.last.json)


def test_decimal_parameters_from_model_specs_are_sent_as_numbers(make_endpoint, upstream):
    from decimal import Decimal

    endpoint = make_endpoint(base_url=upstream.base_url)

    run_chat(endpoint, params={"temperature": Decimal("0.70"), "top_p": Decimal("1.000")})

    assert upstream.last.json["temperature"] == 0.7 and upstream.last.json["top_p"] == 1


# --- URLs --------------------------------------------------------------------------------------------

def test_direct_endpoint_uses_the_base_url_as_the_completion_url(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.url + "/gateway/llm/complete", direct_endpoint=True)

    run_chat(endpoint)

    assert upstream.last.path == "/gateway/llm/complete"


def test_query_params_go_into_the_query_string(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url, query_params={"tenant": "acme", "region": "eu"})

    run_chat(endpoint)

    assert upstream.last.query == {"tenant": "acme", "region": "eu"}


def test_azure_puts_the_deployment_in_the_path_the_api_version_in_the_query_and_the_key_in_api_key(
    make_endpoint, upstream
):
    endpoint = make_endpoint("Azure prod", kind=Kind.AZURE_OPENAI, base_url=upstream.url + "/openai/deployments",
                             api_key="azure-key-0123456789", query_params={"api-version": "2024-10-21"},
                             models=("gpt-4o",))
    EndpointModel.objects.filter(endpoint=endpoint, name="gpt-4o").update(deployment_name="prod-gpt4o")
    EndpointModel.objects.create(endpoint=endpoint, name="gpt-4o-mini")

    events = run_chat(endpoint, model="gpt-4o")
    run_chat(endpoint, model="gpt-4o-mini")

    first, second = upstream.requests
    assert text_of(events) == "Hello from the upstream."
    assert first.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert first.query == {"api-version": "2024-10-21"}
    assert first.headers["api-key"] == "azure-key-0123456789" and "authorization" not in first.headers
    assert first.json["stream_options"] == {"include_usage": True}
    assert second.path == "/openai/deployments/gpt-4o-mini/chat/completions"


def test_azure_direct_endpoint_keeps_the_full_url_and_adds_the_api_version(make_endpoint, upstream):
    endpoint = make_endpoint(kind=Kind.AZURE_OPENAI, direct_endpoint=True,
                             base_url=upstream.url + "/openai/deployments/fixed/chat/completions",
                             query_params={"api-version": "2024-10-21"})

    run_chat(endpoint)

    assert upstream.last.path == "/openai/deployments/fixed/chat/completions"
    assert upstream.last.query == {"api-version": "2024-10-21"}


# --- user_provided -----------------------------------------------------------------------------------

def test_a_user_provided_key_is_the_users_stored_key(make_endpoint, upstream, make_user):
    alice, bob = make_user(), make_user()
    endpoint = make_endpoint(base_url=upstream.base_url, api_key="user_provided")
    UserProviderKey.objects.create(user=alice, endpoint=endpoint, api_key="sk-alice-own-key")
    UserProviderKey.objects.create(user=bob, endpoint=endpoint, api_key="sk-bob-own-key")

    run_chat(endpoint, alice)
    run_chat(endpoint, bob)

    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer sk-alice-own-key",
        "Bearer sk-bob-own-key",
    ]


def test_a_missing_user_key_asks_the_user_to_add_it(make_endpoint, upstream, make_user):
    endpoint = make_endpoint("OpenRouter", base_url=upstream.base_url, api_key="user_provided")

    message = config_error(run_chat(endpoint, make_user()))

    assert message == "Add your key for OpenRouter (Settings → Provider keys) to use this endpoint."
    assert upstream.requests == []


def test_an_expired_user_key_asks_for_a_new_one(make_endpoint, upstream, make_user):
    user = make_user()
    endpoint = make_endpoint("OpenRouter", base_url=upstream.base_url, api_key="user_provided")
    UserProviderKey.objects.create(user=user, endpoint=endpoint, api_key="sk-old",
                                   expires_at=timezone.now() - timedelta(days=1))

    assert "has expired; add your key for OpenRouter" in config_error(run_chat(endpoint, user))


def test_a_user_provided_base_url_gets_no_configured_headers(make_endpoint, upstream, make_user, settings, monkeypatch):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = True
    monkeypatch.setenv("ACME_SECRET_HEADER", "top-secret")
    user = make_user()
    endpoint = make_endpoint(base_url="user_provided", api_key="user_provided",
                             headers={"X-Secret": "${ACME_SECRET_HEADER}", "X-User": "{{LIBRECHAT_USER_EMAIL}}"},
                             query_params={"api-version": "1", "key": "${ACME_SECRET_HEADER}"})
    UserProviderKey.objects.create(user=user, endpoint=endpoint, api_key="sk-mine", base_url=upstream.base_url)

    run_chat(endpoint, user)

    request = upstream.last
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-mine"
    assert "x-secret" not in request.headers and "x-user" not in request.headers
    assert request.query == {"api-version": "1"}


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/v1", "http://localhost:{port}/v1", "http://10.0.0.5/v1", "http://192.168.1.1/v1",
    "http://169.254.169.254/latest", "http://[::1]:{port}/v1", "http://0.0.0.0:{port}/v1",
])
def test_a_user_provided_base_url_cannot_reach_private_addresses(make_endpoint, upstream, make_user, settings, url):
    settings.ALLOW_PRIVATE_USER_BASE_URLS = False
    user = make_user()
    endpoint = make_endpoint("Mine", base_url="user_provided")
    port = upstream.url.rsplit(":", 1)[1]
    UserProviderKey.objects.create(user=user, endpoint=endpoint, base_url=url.format(port=port))

    message = config_error(run_chat(endpoint, user))

    assert message.startswith("Your base URL for Mine points to a local or private network address")
    assert upstream.requests == []


def test_a_user_provided_base_url_must_be_http(make_endpoint, make_user):
    user = make_user()
    endpoint = make_endpoint("Mine", base_url="user_provided")
    UserProviderKey.objects.create(user=user, endpoint=endpoint, base_url="file:///etc/passwd")

    assert "must be an http(s) URL" in config_error(run_chat(endpoint, user))


def test_a_missing_user_base_url_asks_for_it(make_endpoint, make_user):
    user = make_user()
    endpoint = make_endpoint("Mine", base_url="user_provided")
    UserProviderKey.objects.create(user=user, endpoint=endpoint, api_key="sk-x")

    assert (
        config_error(run_chat(endpoint, user))
        == "Add your base URL for Mine (Settings → Provider keys) to use this endpoint."
    )


def test_system_messages_stay_messages_on_openai(make_endpoint, upstream):
    endpoint = make_endpoint(base_url=upstream.base_url)

    run_chat(endpoint, system="S", messages=[ChatMessage("user", [{"type": "text", "text": "hi"}])])

    assert upstream.last.json["messages"] == [{"role": "system", "content": "S"},
                                              {"role": "user", "content": [{"type": "text", "text": "hi"}]}]
