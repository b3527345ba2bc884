"""The provider catalogue (seed provider-compatibility): pick one, paste a key, get an endpoint."""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from endpoints.models import AuthKind, Endpoint, EndpointModel, Kind, Protocol


@dataclass(frozen=True)
class Provider:
    key: str
    name: str
    protocol: str
    base_url: str
    auth: str
    models: tuple[str, ...]
    kind: str = Kind.CUSTOM
    api_key_env: str = ""
    fetch_models: bool = False
    notes: str = ""
    runs_locally: bool = False


A, T, N = AuthKind.API_KEY, AuthKind.ACCESS_TOKEN, AuthKind.NONE
CHAT, ANTH, RESP = Protocol.OPENAI_CHAT, Protocol.ANTHROPIC, Protocol.OPENAI_RESPONSES

PROVIDERS: tuple[Provider, ...] = (
    Provider("anthropic", "Anthropic", ANTH, "https://api.anthropic.com", A,
             ("claude-opus-4", "claude-sonnet-4", "claude-haiku-4"), kind=Kind.ANTHROPIC,
             api_key_env="ANTHROPIC_API_KEY", notes="Native Messages API."),
    Provider("minimax", "MiniMax", ANTH, "https://api.minimax.io/anthropic", A,
             ("claude-sonnet-4",), api_key_env="MINIMAX_API_KEY", notes="Anthropic-compatible proxy."),
    Provider("vertex-anthropic", "Google Vertex AI (Anthropic)", ANTH,
             "https://REGION-aiplatform.googleapis.com/v1/projects/PROJECT/locations/REGION/publishers/anthropic/models",
             T, ("claude-sonnet-4@20250514", "claude-opus-4@20250514"), api_key_env="VERTEX_ACCESS_TOKEN",
             notes="Access token from `gcloud auth print-access-token`; replace REGION and PROJECT in the URL."),
    Provider("openrouter", "OpenRouter", CHAT, "https://openrouter.ai/api/v1", A,
             ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4"), api_key_env="OPENROUTER_KEY",
             fetch_models=True, notes="200+ models behind one API."),
    Provider("xai", "xAI", CHAT, "https://api.x.ai/v1", A, ("grok-3-beta", "grok-3-mini-beta"),
             api_key_env="XAI_API_KEY", fetch_models=True),
    Provider("openai", "OpenAI", CHAT, "https://api.openai.com/v1", A, ("gpt-4o", "gpt-4o-mini", "o1", "o1-mini"),
             kind=Kind.OPENAI, api_key_env="OPENAI_API_KEY", fetch_models=True),
    Provider("deepseek", "DeepSeek", CHAT, "https://api.deepseek.com", A, ("deepseek-chat", "deepseek-reasoner"),
             api_key_env="DEEPSEEK_API_KEY", fetch_models=True),
    Provider("moonshot", "Moonshot", CHAT, "https://api.moonshot.ai/v1", A,
             ("kimi-k2-0905-preview", "moonshot-v1-128k"), api_key_env="MOONSHOT_API_KEY"),
    Provider("glm", "GLM (Zhipu)", CHAT, "https://api.z.ai/api/paas/v4", A, ("glm-4.6", "glm-4-plus"),
             api_key_env="GLM_API_KEY"),
    Provider("groq", "Groq", CHAT, "https://api.groq.com/openai/v1", A,
             ("llama-3.3-70b-versatile", "mixtral-8x7b-32768", "gemma2-9b-it"), api_key_env="GROQ_API_KEY",
             fetch_models=True, notes="Very fast inference."),
    Provider("mistral", "Mistral", CHAT, "https://api.mistral.ai/v1", A,
             ("mistral-large-latest", "mistral-small-latest"), api_key_env="MISTRAL_API_KEY", fetch_models=True),
    Provider("together", "Together.ai", CHAT, "https://api.together.xyz/v1", A,
             ("meta-llama/Llama-3.3-70B-Instruct-Turbo",), api_key_env="TOGETHER_API_KEY", fetch_models=True),
    Provider("perplexity", "Perplexity", CHAT, "https://api.perplexity.ai", A, ("sonar-pro", "sonar"),
             api_key_env="PERPLEXITY_API_KEY", notes="Built-in web search; limited tool calling."),
    Provider("cerebras", "Cerebras", CHAT, "https://api.cerebras.ai/v1", A, ("llama-3.3-70b",),
             api_key_env="CEREBRAS_API_KEY"),
    Provider("azure-openai", "Azure OpenAI", Protocol.AZURE_OPENAI,
             "https://YOUR_RESOURCE.openai.azure.com/openai/deployments", A,
             ("gpt-4o",), kind=Kind.AZURE_OPENAI, api_key_env="AZURE_OPENAI_API_KEY",
             notes="api-key header; the deployment goes in the path; set api-version in query params."),
    Provider("github-copilot", "GitHub Copilot", CHAT, "https://api.githubcopilot.com", T, ("gpt-4o",),
             api_key_env="GITHUB_COPILOT_TOKEN", notes="OAuth device-code tokens; paste a token for now."),
    Provider("gitlab-duo", "GitLab Duo", CHAT, "https://gitlab.com/api/v4/ai/llm/proxy", T,
             ("claude-sonnet-4-20250514",), api_key_env="GITLAB_TOKEN", notes="Personal access token."),
    Provider("chatgpt-codex", "ChatGPT / Codex", RESP, "https://chatgpt.com/backend-api/codex", T,
             ("gpt-5.3-codex", "gpt-5.1-codex", "codex-mini-latest"), api_key_env="CHATGPT_ACCESS_TOKEN",
             notes="Responses API; unsupported parameters are stripped."),
    Provider("claude-subscription", "Claude (subscription)", ANTH, "https://api.claude.ai", T,
             ("claude-sonnet-4", "claude-opus-4", "claude-haiku-4"), api_key_env="CLAUDE_ACCESS_TOKEN"),
    Provider("gemini", "Google Gemini", CHAT, "https://generativelanguage.googleapis.com/v1beta/openai", A,
             ("gemini-2.5-pro", "gemini-2.0-flash"), api_key_env="GOOGLE_API_KEY", notes="OpenAI-compatible endpoint."),
    Provider("qwen", "Qwen", CHAT, "https://chat.qwen.ai/api", T, ("qwen3-235b-a22b", "qwen-max"),
             api_key_env="QWEN_ACCESS_TOKEN"),
    Provider("ollama", "Ollama", CHAT, "http://localhost:11434/v1", N, ("llama3.3", "qwen2.5"),
             fetch_models=True, runs_locally=True, notes="Local; no key."),
    Provider("vllm", "vLLM", CHAT, "http://localhost:8000/v1", N, ("served-model",), fetch_models=True,
             runs_locally=True),
    Provider("lm-studio", "LM Studio", CHAT, "http://localhost:1234/v1", N, ("loaded-model",), fetch_models=True,
             runs_locally=True),
    Provider("bedrock-litellm", "Bedrock (LiteLLM)", CHAT, "http://localhost:4000/v1", A,
             ("bedrock/anthropic.claude-sonnet-4-20250514-v2:0",), api_key_env="LITELLM_API_KEY",
             notes="AWS Bedrock through a LiteLLM proxy."),
)
BY_KEY = {p.key: p for p in PROVIDERS}


def create_endpoint_from_catalogue(
    *, provider_key: str, name: str = "", api_key: str = "", models: list[str] | None = None,
    base_url: str = "",
) -> Endpoint:
    """One step: an enabled endpoint with the provider's protocol, URL, auth and models.

    An empty `api_key` stores the provider's `${ENV_VAR}` reference (e.g. `${GROQ_API_KEY}`).
    """
    provider = BY_KEY[provider_key]
    kind = provider.kind
    name = name.strip() or (kind if kind != Kind.CUSTOM else provider.name)
    if provider.auth == AuthKind.NONE:
        key = api_key
    else:
        key = api_key or (f"${{{provider.api_key_env}}}" if provider.api_key_env else "")
    endpoint = Endpoint(
        name=name,
        kind=kind,
        provider=provider.protocol,
        auth_kind=provider.auth,
        api_key=key,
        base_url=base_url or provider.base_url,
        models_fetch=provider.fetch_models and provider.protocol != Protocol.ANTHROPIC,
        catalogue_key=provider.key,
        model_display_label=provider.name,
    )
    endpoint.full_clean()
    with transaction.atomic():
        endpoint.save()
        for position, model in enumerate(models or provider.models):
            EndpointModel.objects.create(
                endpoint=endpoint, name=model, ordering=position, runs_locally=provider.runs_locally
            )
    return endpoint
