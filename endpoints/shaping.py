"""Request shaping: from an Endpoint, a ChatRequest and a user to one fully resolved upstream `Call`
(SPEC §1.1). Plain synchronous functions (they read the database); `endpoints.services` runs them
in a worker thread.

Order of the rules, each as LibreChat applies them:
  credentials   `${ENV}` in apiKey/baseURL resolved now; `user_provided` key/URL from the user's
                stored key ("add your key" when missing); a user URL's form is checked here, its
                addresses when the connection opens (`endpoints.http.VettingBackend`)
  URL           the adapter's: baseURL + the protocol's path, or baseURL alone with directEndpoint
                (Azure's adapter puts the deployment in the path); query_params (Azure
                `api-version`, …) in the query string
  headers       the protocol's auth header (Bearer, Azure `api-key`, Anthropic `x-api-key`), then the
                endpoint's headers with `${ENV}`, `{{LIBRECHAT_USER_*}}` and `{{LIBRECHAT_BODY_*}}`
                filled in; a configured header (e.g. Authorization) wins over the apiKey one.
                Configured headers are never sent to a user-provided baseURL.
  body          the protocol's default parameters, reasoning per customParams.reasoningFormat,
                then addParams merged, then dropParams removed, then what the protocol always
                needs (OpenAI streams: stream_options.include_usage; Anthropic: max_tokens)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from django.apps import apps
from django.utils import timezone

from endpoints import config
from endpoints.adapters import adapter_for
from endpoints.adapters.base import REASONING_PARAMS, Adapter, Shape
from endpoints.adapters.types import Call, ChatRequest
from endpoints.models import AuthKind, Endpoint, UserProviderKey


class ConfigError(Exception):
    """The endpoint cannot be called as configured (for this user); the message says what to do."""


@dataclass
class Target:
    """Where and with which credentials to call an endpoint, for one user."""

    base_url: str
    api_key: str
    user_base_url: bool  # the URL came from the user: no configured headers, outbound checks applied
    secrets: tuple[str, ...]


# --- credentials and the outbound check ------------------------------------------------------------

def _resolve(value: str, what: str, endpoint: Endpoint) -> str:
    try:
        return config.resolve_env(value)
    except config.MissingEnvironmentVariable as exc:
        raise ConfigError(
            f"{endpoint.name} is not usable: its {what} refers to the environment variable {exc.name}, "
            "which is not set on the Atrium server. Ask an administrator."
        ) from None


def _user_key(endpoint: Endpoint, user: Any) -> UserProviderKey:
    if user is None or not getattr(user, "pk", None):
        raise ConfigError(f"{endpoint.name} needs your own API key; sign in and add your key for {endpoint.name}.")
    key = UserProviderKey.objects.filter(user=user, endpoint=endpoint).first()
    if key is None:
        raise ConfigError(f"Add your key for {endpoint.name} (Settings → Provider keys) to use this endpoint.")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise ConfigError(f"Your key for {endpoint.name} has expired; add your key for {endpoint.name} again.")
    return key


def target_for(endpoint: Endpoint, user: Any) -> Target:
    stored = _user_key(endpoint, user) if (endpoint.user_provides_key or endpoint.user_provides_base_url) else None
    if endpoint.auth_kind == AuthKind.NONE:
        api_key = ""
    elif endpoint.user_provides_key:
        assert stored is not None
        api_key = (stored.api_key or "").strip()
        if not api_key:
            raise ConfigError(f"Add your key for {endpoint.name} (Settings → Provider keys) to use this endpoint.")
    else:
        api_key = _resolve(endpoint.api_key or "", "API key", endpoint).strip()
    if endpoint.user_provides_base_url:
        assert stored is not None
        base_url = (stored.base_url or "").strip()
        if not base_url:
            raise ConfigError(f"Add your base URL for {endpoint.name} (Settings → Provider keys) to use this endpoint.")
        check_url_form(base_url, endpoint.name)  # (its addresses are vetted when the connection opens)
    else:
        base_url = _resolve(endpoint.effective_base_url, "base URL", endpoint).strip()
        if not base_url:
            raise ConfigError(f"{endpoint.name} has no base URL configured. Ask an administrator.")
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError(f"{endpoint.name}: the configured base URL is not an http(s) URL. Ask an administrator.")
    return Target(
        base_url=base_url, api_key=api_key, user_base_url=endpoint.user_provides_base_url,
        secrets=tuple(s for s in (api_key,) if s),
    )


def _not_http_url(endpoint_name: str) -> ConfigError:
    return ConfigError(f"Your base URL for {endpoint_name} must be an http(s) URL, e.g. https://api.example.com/v1.")


def check_url_form(url: str, endpoint_name: str) -> None:
    parts = urlsplit(url)
    try:
        hostname, _port = parts.hostname, parts.port
    except ValueError:
        hostname = None
    if parts.scheme not in ("http", "https") or not hostname:
        raise _not_http_url(endpoint_name)
    try:
        httpx.URL(url)  # a URL httpx cannot send (e.g. a host name that is not valid IDNA)
    except (httpx.InvalidURL, UnicodeError):
        raise _not_http_url(endpoint_name) from None


# --- headers ---------------------------------------------------------------------------------------

_USER_ATTRIBUTES = {
    "USERNAME": "username", "EMAIL": "email", "PROVIDER": "auth_provider", "OPENIDID": "openid_id",
    "LDAPID": "ldap_id", "GOOGLEID": "google_id", "FACEBOOKID": "facebook_id", "SAMLID": "saml_id",
    "GITHUBID": "github_id", "DISCORDID": "discord_id", "APPLEID": "apple_id",
}
_SOCIAL_PROVIDERS = {"GOOGLEID": "google", "FACEBOOKID": "facebook", "GITHUBID": "github",
                     "DISCORDID": "discord", "APPLEID": "apple", "SAMLID": "saml"}


def _flag(value: Any) -> str:
    return "true" if value else "false"


def user_field(user: Any, field: str) -> str:
    """The value of `{{LIBRECHAT_USER_<FIELD>}}`; fields Atrium's user lacks are ""."""
    if user is None:
        return ""
    field = field.upper()
    if field == "ID":
        return str(user.pk or "")
    if field == "NAME":
        return getattr(user, "name", "") or user.get_full_name() or ""
    if field == "ROLE":
        role = getattr(user, "role", None)
        return role.name if role is not None else ""
    if field == "TERMSACCEPTED":
        return _flag(getattr(user, "terms_accepted", False))
    if field == "EMAILVERIFIED":
        if apps.is_installed("allauth.account"):
            from allauth.account.models import EmailAddress

            return _flag(EmailAddress.objects.filter(user=user, verified=True, email__iexact=user.email).exists())
        return _flag(getattr(user, "email_verified", False))
    if field == "TWOFACTORENABLED":
        if apps.is_installed("allauth.mfa"):
            from allauth.mfa.models import Authenticator

            return _flag(Authenticator.objects.filter(user=user).exclude(type="recovery_codes").exists())
        return _flag(getattr(user, "two_factor_enabled", False))
    value = getattr(user, _USER_ATTRIBUTES.get(field, ""), "") if field in _USER_ATTRIBUTES else ""
    if not value and field in _SOCIAL_PROVIDERS and apps.is_installed("allauth.socialaccount"):
        from allauth.socialaccount.models import SocialAccount

        value = SocialAccount.objects.filter(user=user, provider=_SOCIAL_PROVIDERS[field]).values_list(
            "uid", flat=True).first() or ""
    return str(value or "")


def body_field(request: ChatRequest | None, field: str) -> str:
    if request is None:
        return ""
    return {
        "CONVERSATIONID": request.conversation_id,
        "PARENTMESSAGEID": request.parent_message_id,
        "MESSAGEID": request.message_id,
    }.get(field.upper(), "") or ""


def _header_safe(value: str) -> str:
    """A substituted value can't add headers or break the request line."""
    return "".join(ch for ch in value if ch == "\t" or (ord(ch) >= 32 and ord(ch) != 127))


def configured_headers(endpoint: Endpoint, user: Any, request: ChatRequest | None) -> tuple[dict[str, str], list[str]]:
    """The endpoint's headers resolved for this user and request, and the values that came from the
    environment (secrets to scrub)."""
    resolved: dict[str, str] = {}
    secrets: list[str] = []
    for name, template in (endpoint.headers or {}).items():
        value = _resolve(str(template), f"header {name}", endpoint)
        if config.env_references(str(template)):
            secrets.append(value)

        def fill(match: Any) -> str:
            group, field = match.group(1), match.group(2)
            filled = user_field(user, field) if group == "USER" else body_field(request, field)
            return _header_safe(filled)

        resolved[name] = config.PLACEHOLDER.sub(fill, value)
    return resolved, secrets


def merge_headers(base: dict[str, str], override: dict[str, str]) -> dict[str, str]:
    """Case-insensitive: a configured header replaces the default of the same name."""
    lowered = {name.lower() for name in override}
    merged = {name: value for name, value in base.items() if name.lower() not in lowered}
    merged.update(override)
    return merged


def _with_query(url: str, params: dict[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _query_params(endpoint: Endpoint, target: Target) -> tuple[dict[str, str], list[str]]:
    params: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in (endpoint.query_params or {}).items():
        text = str(value)
        if config.env_references(text):
            if target.user_base_url:
                continue  # environment values never travel to a user-chosen host
            text = _resolve(text, f"query parameter {name}", endpoint)
            secrets.append(text)
        params[str(name)] = text
    return params, secrets


def _auth(adapter: Adapter, endpoint: Endpoint, target: Target) -> dict[str, str]:
    return adapter.auth_headers(api_key=target.api_key, auth_kind=endpoint.auth_kind)


# --- the call --------------------------------------------------------------------------------------

def build_call(*, endpoint: Endpoint, request: ChatRequest, user: Any) -> Call:
    """Everything the upstream receives for one chat request. Raises ConfigError."""
    adapter = adapter_for(endpoint.provider)
    target = target_for(endpoint, user)
    custom = endpoint.custom_params or {}
    shape = Shape(
        request=request,
        user_id=str(user.pk) if user is not None and getattr(user, "pk", None) else "",
        reasoning_format=custom.get("reasoningFormat"),
        base_url=target.base_url,
        direct=endpoint.direct_endpoint,
        endpoint=endpoint,
    )

    url = adapter.url(shape)
    query, query_secrets = _query_params(endpoint, target)
    url = _with_query(url, query)

    headers = {**adapter.base_headers(stream=request.stream), **_auth(adapter, endpoint, target)}
    secrets = [*target.secrets, *query_secrets]
    if not target.user_base_url:
        configured, header_secrets = configured_headers(endpoint, user, request)
        headers = merge_headers(headers, configured)
        secrets += header_secrets

    body = adapter.body(shape)
    body.update(endpoint.add_params or {})
    dropped = [str(name) for name in (endpoint.drop_params or [])]
    for name in dropped:
        if name not in ("model", "messages", "input"):
            body.pop(name, None)
    if shape.reasoning_format == "disabled":
        for name in REASONING_PARAMS:
            body.pop(name, None)
    body = adapter.finalize(body, shape, dropped)

    for name, value in headers.items():
        if name.lower() in ("authorization", "api-key", "x-api-key") and value:
            secrets.append(value.split(" ", 1)[-1])
    return Call(
        endpoint_name=endpoint.name,
        model=request.model,
        url=url,
        headers=headers,
        body=body,
        stream=request.stream,
        reasoning_key=custom.get("reasoningKey"),
        outbound_check=target.user_base_url,
        secrets=tuple(sorted({s for s in secrets if s}, key=len, reverse=True)),
        credential=target.api_key,
    )


@dataclass
class ModelsRequest:
    url: str
    headers: dict[str, str]
    secrets: tuple[str, ...]
    per_user: bool  # the answer may differ per user (cache per user)
    outbound_check: bool  # a user-provided URL: sent through the vetting client (`http.request(vet=True)`)


def build_models_request(*, endpoint: Endpoint, user: Any) -> ModelsRequest:
    """`GET {baseURL}/models` with the endpoint's auth and headers (not to a user-provided baseURL)
    and `?user=<id>` with userIdQuery."""
    adapter = adapter_for(endpoint.provider)
    target = target_for(endpoint, user)
    url = target.base_url.rstrip("/") + (adapter.models_path or "/models")
    query, query_secrets = _query_params(endpoint, target)
    if endpoint.user_id_query and user is not None and getattr(user, "pk", None):
        query["user"] = str(user.pk)
    url = _with_query(url, query)
    headers = _auth(adapter, endpoint, target)
    secrets = [*target.secrets, *query_secrets]
    templated = False
    if not target.user_base_url:
        configured, header_secrets = configured_headers(endpoint, user, None)
        headers = merge_headers(headers, configured)
        secrets += header_secrets
        templated = any("LIBRECHAT_USER_" in str(v) for v in (endpoint.headers or {}).values())
    per_user = bool(
        endpoint.user_provides_key or endpoint.user_provides_base_url or endpoint.user_id_query or templated
    )
    return ModelsRequest(url=url, headers=headers, secrets=tuple(s for s in secrets if s), per_user=per_user,
                         outbound_check=target.user_base_url)
