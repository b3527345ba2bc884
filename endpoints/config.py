"""Rules for the values an Endpoint may hold (LibreChat's custom-endpoint object), as plain functions.

Model `clean()` methods, the admin and the librechat.yaml importer all call these, so a rule and
its message exist once.
"""
from __future__ import annotations

import os
import re
from typing import Any, Literal

from django.core.exceptions import ValidationError
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticError

USER_PROVIDED = "user_provided"
RESERVED_NAMES = (
    "openAI",
    "azureOpenAI",
    "google",
    "anthropic",
    "assistants",
    "azureAssistants",
    "agents",
    "bedrock",
)
RESERVED_LOWER = {name.lower(): name for name in RESERVED_NAMES}
# Endpoint names LibreChat ships an icon for (case-insensitive); iconURL can be left empty.
KNOWN_ICON_NAMES = {
    name.lower()
    for name in (
        "Anyscale", "APIpie", "Cohere", "Deepseek", "Fireworks", "groq", "Helicone", "Huggingface",
        "Mistral", "MLX", "Moonshot", "ollama", "OpenRouter", "Perplexity", "Qwen", "ShuttleAI",
        "together.ai", "Unify", "xai",
    )
}
USER_FIELDS = (
    "ID", "NAME", "USERNAME", "EMAIL", "PROVIDER", "ROLE", "GOOGLEID", "FACEBOOKID", "OPENIDID",
    "SAMLID", "LDAPID", "GITHUBID", "DISCORDID", "APPLEID", "EMAILVERIFIED", "TWOFACTORENABLED",
    "TERMSACCEPTED",
)
BODY_FIELDS = ("CONVERSATIONID", "PARENTMESSAGEID", "MESSAGEID")
# Request-body fields the portal itself sets from the conversation on every call (the messages and
# system prompt, the model, streaming and usage reporting, tools, the user id): the same fields a
# user may not set (chat's reserved parameters), which an endpoint's addParams may not override
# either — `{"messages": []}` there would send every chat upstream without its messages. `metadata`
# is left to addParams: Atrium never sets it and LibreChat configurations use it to tag requests.
PORTAL_CONTROLLED_PARAMS = frozenset({
    "model", "messages", "system", "input", "instructions", "prompt", "stream", "stream_options", "tools",
    "tool_choice", "functions", "user", "n",
})

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDER = re.compile(r"\{\{\s*LIBRECHAT_(USER|BODY)_([A-Za-z_]+)\s*\}\}")
ANY_PLACEHOLDER = re.compile(r"\{\{\s*LIBRECHAT_[^}]*\}\}")
BARE_ENV = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class MissingEnvironmentVariable(Exception):
    """A `${VAR}` reference names a variable that is not set where Atrium runs."""

    def __init__(self, name: str):
        super().__init__(f"Environment variable {name} is not set on the Atrium server.")
        self.name = name


# --- value forms ----------------------------------------------------------------------------------

def is_user_provided(value: str | None) -> bool:
    return (value or "").strip() == USER_PROVIDED


def env_references(value: str) -> list[str]:
    return ENV_REF.findall(value or "")


def check_env_syntax(value: str, field: str) -> None:
    """`${VAR}` references must be well formed: `${` closed, a valid variable name."""
    stripped = ENV_REF.sub("", value or "")
    if "${" in stripped:
        raise ValidationError(
            f"{field}: malformed environment reference in {value!r}; write it as ${{VARIABLE_NAME}} "
            "(letters, digits and underscores, not starting with a digit)."
        )


def resolve_env(value: str, environ: dict[str, str] | None = None) -> str:
    """Replace every `${VAR}` with its value at request time (never stored resolved)."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingEnvironmentVariable(name)
        return env[name]

    return ENV_REF.sub(replace, value or "")


def validate_api_key(value: str) -> None:
    if is_user_provided(value) or not value:
        return
    if BARE_ENV.match(value.strip()):  # `$OPENAI_API_KEY` would be sent as the key itself
        raise ValidationError(
            f"apiKey: {value.strip()!r} looks like an environment variable; write it as "
            f"${{{value.strip()[1:]}}} to read it from the environment."
        )
    check_env_syntax(value, "apiKey")


def validate_base_url(value: str, *, required: bool) -> None:
    if not value:
        if required:
            raise ValidationError("baseURL is required for this endpoint (a URL, ${ENV_VAR} or user_provided).")
        return
    if is_user_provided(value):
        return
    check_env_syntax(value, "baseURL")
    if value.startswith("${"):
        return  # the whole URL (or its start) comes from the environment
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValidationError(
            f"baseURL must be an http(s) URL, a ${{ENV_VAR}} reference or user_provided; got {value!r}."
        )


def validate_endpoint_name(name: str, kind: str) -> None:
    if not name or not name.strip():
        raise ValidationError("name is required.")
    reserved = RESERVED_LOWER.get(name.strip().lower())
    if reserved and (kind == "custom" or kind.lower() != reserved.lower()):
        raise ValidationError(
            f"'{name}' is a reserved endpoint name ({', '.join(RESERVED_NAMES)}). Give the endpoint "
            "a unique name; to reuse a built-in icon set iconURL to the built-in key instead."
        )


def validate_title_prompt(value: str) -> None:
    if value and "{convo}" not in value:
        raise ValidationError("titlePrompt must contain the {convo} placeholder.")


def validate_title_prompt_template(value: str) -> None:
    missing = [p for p in ("{input}", "{output}") if p not in (value or "")]
    if value and missing:
        raise ValidationError(
            f"titlePromptTemplate must contain the {{input}} and {{output}} placeholders (missing {', '.join(missing)})."
        )


def validate_headers(value: Any) -> None:
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        raise ValidationError("headers must be an object of header name → string value.")
    for name, header_value in value.items():
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise ValidationError(f"headers: {name!r} is not a valid HTTP header name.")
        if not isinstance(header_value, str):
            raise ValidationError(
                f"headers: the value of {name!r} must be a string (got {type(header_value).__name__}"
                f" {header_value!r}); put the value in quotes."
            )
        check_env_syntax(header_value, f"headers.{name}")
        for placeholder in ANY_PLACEHOLDER.findall(header_value):
            if not PLACEHOLDER.fullmatch(placeholder):
                raise ValidationError(
                    f"headers.{name}: unknown placeholder {placeholder}; use {{{{LIBRECHAT_USER_<FIELD>}}}} "
                    "or {{LIBRECHAT_BODY_<FIELD>}}."
                )
        for group, field in PLACEHOLDER.findall(header_value):
            known = USER_FIELDS if group == "USER" else BODY_FIELDS
            if field.upper() not in known:
                raise ValidationError(
                    f"headers.{name}: unknown placeholder {{{{LIBRECHAT_{group}_{field}}}}}; "
                    f"known: {', '.join('LIBRECHAT_' + group + '_' + f for f in known)}."
                )


def validate_string_map(value: Any, field: str) -> None:
    if value in (None, {}):
        return
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
        raise ValidationError(f"{field} must be an object of name → string value.")


def validate_add_params(value: Any) -> None:
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        raise ValidationError("addParams must be an object (key → value) merged into every request body.")
    controlled = sorted(key for key in value if key in PORTAL_CONTROLLED_PARAMS)
    if controlled:
        raise ValidationError(
            f"addParams may not set {', '.join(controlled)}: Atrium sets "
            f"{'this field' if len(controlled) == 1 else 'these fields'} on every request itself "
            "(the conversation's messages, the model, streaming, usage, the user). Remove "
            f"{'it' if len(controlled) == 1 else 'them'} from addParams."
        )


def validate_drop_params(value: Any) -> None:
    if value in (None, []):
        return
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValidationError("dropParams must be a list of parameter names, e.g. [\"stop\", \"user\"].")


class ParamDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: str


class CustomParams(BaseModel):
    """LibreChat `customParams`."""

    model_config = ConfigDict(extra="forbid")
    defaultParamsEndpoint: str | None = None
    reasoningFormat: Literal["reasoning_effort", "reasoning_object", "disabled"] | None = None
    reasoningKey: Literal["reasoning", "reasoning_content"] | None = None
    paramDefinitions: list[ParamDefinition] | None = None


def validate_custom_params(value: Any) -> CustomParams:
    if value in (None, {}):
        return CustomParams()
    if not isinstance(value, dict):
        raise ValidationError("customParams must be an object.")
    try:
        return CustomParams.model_validate(value)
    except PydanticError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "literal_error":
                problems.append(f"customParams.{where}: {err['msg']} (got {err['input']!r})")
            elif err["type"] == "extra_forbidden":
                problems.append(
                    f"customParams.{where} is not a known key (defaultParamsEndpoint, "
                    "reasoningFormat, reasoningKey, paramDefinitions)"
                )
            else:
                problems.append(f"customParams.{where}: {err['msg']}")
        raise ValidationError(problems) from exc
