"""Azure OpenAI: `endpoints.azureOpenAI.groups[]`, one endpoint per group (an Azure resource), its
models mapped to deployments, and the group's api-version sent as a query parameter."""
from __future__ import annotations

from typing import Any

from endpoints.librechat_import.endpoints import EndpointImporter
from endpoints.librechat_import.mapping import (
    AZURE_GROUP_KEYS,
    AZURE_HOST,
    ENDPOINT_KEYS,
    ENDPOINT_SKIP_REASONS,
    FIELD_KEYS,
    NOT_AN_ENDPOINT_KEY,
)
from endpoints.librechat_import.shape import describe
from endpoints.models import Endpoint, Kind

SERVERLESS_REASON = (
    "serverless Azure groups are not imported; configure them as a custom endpoint "
    "(baseURL, apiKey, headers {api-key: ...})"
)


class AzureImporter(EndpointImporter):
    def import_azure(self, section: Any) -> None:
        where = "endpoints.azureOpenAI"
        if not self.expect(where, section, dict):
            return
        groups = section.get("groups")
        if groups is None:
            self.problem(f"{where}.groups", "groups is required (one entry per Azure resource).")
            return
        if not self.expect(f"{where}.groups", groups, list):
            return
        shared = {}
        for key, value in section.items():
            if key == "groups":
                continue
            if key in ("models", "tokenConfig", "apiKey", "baseURL", "name"):
                self.skip(f"{where}.{key}", "set per group in azureOpenAI.groups[]", where)
            elif key in ENDPOINT_KEYS or key == "titleEndpoint":
                shared[key] = value  # shared settings: apply to every group
            else:
                self.skip(f"{where}.{key}", ENDPOINT_SKIP_REASONS.get(key, NOT_AN_ENDPOINT_KEY), where)
        for index, group in enumerate(groups):
            at = f"{where}.groups[{index}]"
            if not isinstance(group, dict):
                self.problem(at, f"expected a group object, got {describe(group)}.")
                continue
            if isinstance(group.get("group"), str):
                at += f" ({group['group']})"
            self.import_azure_group(at, shared, group)

    def import_azure_group(self, where: str, shared: dict[str, Any], group: dict[str, Any]) -> None:
        for key in group:
            if key not in AZURE_GROUP_KEYS:
                reason = ENDPOINT_SKIP_REASONS.get(key, "not a key of an Azure group Atrium imports")
                self.skip(f"{where}.{key}", reason, where)
        if group.get("serverless"):
            self.skip(where, SERVERLESS_REASON, where)
            return
        name = group.get("group")
        if not isinstance(name, str) or not name.strip():
            self.problem(f"{where}.group", "group is required (the name shown for this Azure resource).")
            return
        strings, ok = self.read_azure_strings(where, group)
        version = strings.get("version")
        if not version and "version" not in group:
            self.problem(f"{where}.version", "version is required (sent as the api-version query parameter).")
            ok = False
        base_url = self.azure_base_url(where, group, strings)
        models = self.read_azure_models(where, group, strings.get("deploymentName"), version)
        if not ok or base_url is None or models is None:
            self.failed.add(name.strip().lower())
            return
        listed, deployments = models
        overrides = {"api_key": strings.get("apiKey", ""), "base_url": base_url,
                     "query_params": {"api-version": version} if version else {}}
        keys = FIELD_KEYS | {"name": "group", "headers": "additionalHeaders", "query_params": "version",
                             "base_url": "baseURL" if "baseURL" in group else "instanceName"}
        endpoint = self.import_endpoint(where, azure_entry(shared, group), kind=Kind.AZURE_OPENAI,
                                        name=name.strip(), overrides=overrides, keys=keys)
        if endpoint is None:
            return
        changes = self.sync_models(where, endpoint, listed, {}, deployments)
        self.report_deployments(endpoint, listed, deployments, changes)

    def read_azure_strings(self, where: str, group: dict[str, Any]) -> tuple[dict[str, str], bool]:
        """The group's text settings, stripped, and whether each one given is text."""
        strings = {}
        ok = True
        for key in ("apiKey", "instanceName", "deploymentName", "version", "baseURL"):
            if key in group:
                if self.expect(f"{where}.{key}", group[key], str):
                    strings[key] = group[key].strip()
                else:
                    ok = False
        return strings, ok

    def azure_base_url(self, where: str, group: dict[str, Any], strings: dict[str, str]) -> str | None:
        """The URL the deployment name is appended to: baseURL with ${INSTANCE_NAME} filled in, or the
        instance's own host; None after a problem."""
        instance = strings.get("instanceName", "")
        base_url = strings.get("baseURL", "")
        if not base_url:
            if instance:
                return AZURE_HOST.format(instance=instance)
            if "instanceName" not in group:
                self.problem(f"{where}.instanceName", "instanceName (or baseURL) is required.")
                return None
            return ""
        ok = True
        if "${INSTANCE_NAME}" in base_url:
            if not instance:
                self.problem(f"{where}.baseURL", "uses ${INSTANCE_NAME} but the group has no instanceName.")
                ok = False
            base_url = base_url.replace("${INSTANCE_NAME}", instance)
        base_url = base_url.rstrip("/").removesuffix("/${DEPLOYMENT_NAME}")
        if "${DEPLOYMENT_NAME}" in base_url:
            self.problem(f"{where}.baseURL", "${DEPLOYMENT_NAME} is supported only as the last path segment "
                                             "(Atrium appends /<deployment>/chat/completions).")
            ok = False
        return base_url if ok else None

    def read_azure_models(
        self, where: str, group: dict[str, Any], deployment: str | None, version: str | None
    ) -> tuple[list[str], dict[str, str]] | None:
        """The models the group offers, in file order, and each one's deployment; None after a problem."""
        block = group.get("models")
        if block is None:
            self.problem(f"{where}.models", "models is required (model name: true, or {deploymentName, version}).")
            return None
        if not self.expect(f"{where}.models", block, dict):
            return None
        listed: list[str] = []
        deployments: dict[str, str] = {}
        ok = True
        for model_name, spec in block.items():
            at = f"{where}.models.{model_name}"
            if spec is False:
                self.skip(at, "set to false: not offered", where)
                continue
            model_deployment = self.read_azure_model(where, at, spec, deployment or str(model_name), version)
            if model_deployment is None:
                ok = False
                continue
            listed.append(str(model_name))
            deployments[str(model_name)] = model_deployment
        return (listed, deployments) if ok else None

    def read_azure_model(self, where: str, at: str, spec: Any, deployment: str, version: str | None) -> str | None:
        """One model's deployment: `true` keeps the group's, an object may name its own; None after a problem."""
        if spec is True:
            return deployment
        if not isinstance(spec, dict):
            self.problem(at, f"expected true or {{deploymentName, version}}, got {describe(spec)}.")
            return None
        ok = True
        for key, value in spec.items():
            if key == "deploymentName":
                if self.expect(f"{at}.deploymentName", value, str):
                    deployment = value
                else:
                    ok = False
            elif key == "version":
                if value != version:
                    self.skip(f"{at}.version", f"Atrium sends one api-version per Azure group; "
                                               f"{version!r} is used for this model too", where)
            else:
                self.skip(f"{at}.{key}", "a model takes only deploymentName and version", where)
        return deployment if ok else None

    def report_deployments(
        self, endpoint: Endpoint, listed: list[str], deployments: dict[str, str], changes: list[str] | None
    ) -> None:
        """Name each model's deployment on the endpoint's report line."""
        line = self.report.find(f"endpoint '{endpoint.name}'")
        if not changes or line is None:
            return
        if line.action == "created":
            line.detail = f"{endpoint.get_kind_display()}; models: " + ", ".join(
                f"{m} (deployment {deployments[m]})" for m in listed)
            return
        if line.action == "unchanged":
            line.action = "updated"
        line.detail = ", ".join(filter(None, [line.detail, *changes]))


def azure_entry(shared: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    """The group as a custom-endpoint object: the section's shared settings, then the group's own."""
    entry = dict(shared)
    for key in ("addParams", "dropParams"):
        if key in group:
            entry[key] = group[key]
    if "additionalHeaders" in group:
        entry["headers"] = group["additionalHeaders"]
    return entry
