"""Azure OpenAI: Chat Completions as Azure serves it (SPEC §1.1, "Azure specifics").

The deployment goes in the path — `{baseURL}/{deployment}/chat/completions`, baseURL being
`https://<resource>.openai.azure.com/openai/deployments` — and the key in an `api-key` header
instead of a Bearer token; `api-version` (the endpoint's query_params) is added by shaping as for
any endpoint. The stream and the body are OpenAI's.
"""
from __future__ import annotations

from endpoints.adapters.base import Shape
from endpoints.adapters.openai_chat import OpenAIChatAdapter


class AzureOpenAIAdapter(OpenAIChatAdapter):
    protocol = "azure_openai"
    label = "Azure OpenAI Chat Completions (/<deployment>/chat/completions)"

    def url(self, shape: Shape) -> str:
        if shape.direct:
            return shape.base_url
        model = shape.request.model
        # the deployment an admin named for this model (EndpointModel.deployment_name), else the model
        deployment = shape.endpoint.deployment_for(model) if shape.endpoint is not None else model
        return f"{shape.base_url.rstrip('/')}/{deployment}{self.path}"

    def auth_headers(self, *, api_key: str, auth_kind: str) -> dict[str, str]:
        return {"api-key": api_key} if api_key else {}
