"""What an import did, line by line, and the error that says why a file was refused."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class LibreChatImportError(Exception):
    """The file cannot be imported; nothing was changed. `problems` name the entry and key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class ReportLine:
    action: str  # created | updated | unchanged | skipped
    subject: str  # what, e.g. "endpoint 'groq'"
    where: str = ""  # the YAML path it came from
    detail: str = ""  # changed keys, or why it was skipped


@dataclass
class ImportReport:
    source: str
    dry_run: bool = False
    version: str | None = None
    lines: list[ReportLine] = field(default_factory=list)

    ACTIONS = ("created", "updated", "unchanged", "skipped")

    def add(self, action: str, subject: str, where: str = "", detail: str = "") -> ReportLine:
        line = ReportLine(action, subject, where, detail)
        self.lines.append(line)
        return line

    def of(self, action: str) -> list[ReportLine]:
        return [line for line in self.lines if line.action == action]

    def find(self, subject: str) -> ReportLine | None:
        return next((line for line in self.lines if line.subject == subject), None)

    def counts(self) -> dict[str, int]:
        return {action: len(self.of(action)) for action in self.ACTIONS}

    def render(self) -> str:
        head = f"Importing {self.source}"
        if self.version:
            head += f" (config version {self.version})"
        out = [head + (" — dry run" if self.dry_run else "")]
        for action in self.ACTIONS:
            lines = self.of(action)
            if not lines:
                continue
            out.append("")
            out.append(f"{action.capitalize()} ({len(lines)}):")
            for line in lines:
                text = f"  {line.subject}"
                if line.where and not re.match(re.escape(line.where) + r"($|[.:])", line.subject):
                    text += f"  [{line.where}]"
                if line.detail:
                    text += f" — {line.detail}"
                out.append(text)
        out.append("")
        out.append(", ".join(f"{n} {action}" for action, n in self.counts().items()) + ".")
        if self.dry_run:
            out.append("Dry run: everything was validated, nothing was saved.")
        return "\n".join(out)

