"""The importer as a whole: the sections in the order their references need."""
from __future__ import annotations

from typing import Any

from endpoints.librechat_import.azure import AzureImporter
from endpoints.librechat_import.balance import BalanceImporter
from endpoints.librechat_import.mapping import BUILTIN_ORDER, ENDPOINTS_SKIP_REASONS, TOP_LEVEL_SKIP_REASONS
from endpoints.librechat_import.specs import SpecImporter
from endpoints.models import Kind


class Importer(AzureImporter, SpecImporter, BalanceImporter):
    """Every part of the importer over one shared state (ImporterBase); `run` takes a parsed file."""

    def run(self, data: dict[str, Any]) -> None:
        version = data.get("version")
        if version is not None:
            self.report.version = str(version)
        for key, value in data.items():
            if key == "version":
                continue
            elif key == "endpoints":
                self.import_endpoints(value)
            elif key in ("modelSpecs", "balance", "interface"):
                continue  # after the endpoints: specs reference them
            else:
                self.skip(key, TOP_LEVEL_SKIP_REASONS.get(key, "not a librechat.yaml section Atrium imports"), key)
        if "modelSpecs" in data:
            self.import_model_specs(data["modelSpecs"])
        self.resolve_title_endpoints()  # after the specs: they may create a built-in a title names
        if "balance" in data:
            self.import_balance(data["balance"])
        if "interface" in data:
            self.import_interface(data["interface"])

    def import_endpoints(self, section: Any) -> None:
        if not self.expect("endpoints", section, dict):
            return
        # Built-in kinds first, in LibreChat's selector order, then custom ones in file order.
        by_key = {str(k).lower(): k for k in section}
        for kind in BUILTIN_ORDER:
            key = by_key.get(kind.lower())
            if key is None:
                continue
            if kind == Kind.AZURE_OPENAI:
                self.import_azure(section[key])
            else:
                self.import_builtin(str(kind), key, section[key])
        for key, value in section.items():
            if str(key).lower() in {k.lower() for k in BUILTIN_ORDER}:
                continue
            if key == "custom":
                self.import_custom_list(value)
            else:
                reason = ENDPOINTS_SKIP_REASONS.get(key, "not an endpoint kind Atrium knows")
                self.skip(f"endpoints.{key}", reason, f"endpoints.{key}")

