"""Reading deploy/Dockerfile and which paths its dockerignore leaves out."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tests.unit.deploy.cli_lines import DOCKERIGNORE, expand

# --- the Dockerfile ------------------------------------------------------------------


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]]
    args: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        logical: list[str] = []
        pending = ""
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or (not stripped and pending):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            if pending or stripped:
                logical.append(pending + stripped)
            pending = ""
        instructions = []
        for text in logical:
            keyword, _, rest = text.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        args = {}
        for keyword, rest in instructions:
            if keyword == "FROM":
                break
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                args[name] = default
        return cls(instructions, args)

    def final_stage(self) -> list[tuple[str, str]]:
        starts = [i for i, (k, _) in enumerate(self.instructions) if k == "FROM"]
        return self.instructions[starts[-1] :]

    def base_images(self) -> list[str]:
        return [
            expand(rest.split()[0], self.args)
            for keyword, rest in self.instructions
            if keyword == "FROM"
        ]

    def last(self, keyword: str) -> str | None:
        found = [rest for k, rest in self.final_stage() if k == keyword]
        return found[-1] if found else None

    @staticmethod
    def command_form(text: str) -> list[str]:
        """Exec form (JSON) as is; shell form as ``/bin/sh -c TEXT``."""
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return ["/bin/sh", "-c", text]

    def entrypoint(self) -> list[str]:
        text = self.last("ENTRYPOINT")
        return self.command_form(text) if text else []

    def cmd(self) -> list[str]:
        text = self.last("CMD")
        return self.command_form(text) if text else []

    def healthcheck(self) -> list[str] | None:
        """The argv of the HEALTHCHECK's command (shell form: ``/bin/sh -c TEXT``)."""
        text = self.last("HEALTHCHECK")
        if text is None or text.upper() == "NONE":
            return None
        found = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(.*)", text, re.DOTALL)
        assert found, f"HEALTHCHECK without CMD: {text}"
        return self.command_form(found.group(1).strip())

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY/ADD from the build context (not --from)."""
        out = []
        for keyword, rest in self.instructions:
            if keyword not in ("COPY", "ADD"):
                continue
            words = rest.split()
            flags = [w for w in words if w.startswith("--")]
            if any(f.startswith("--from=") for f in flags):
                continue
            paths = [w for w in words if not w.startswith("--")]
            out.append((paths[:-1], paths[-1]))
        return out

    def exposed(self) -> set[int]:
        return {
            int(p.split("/")[0])
            for keyword, rest in self.instructions
            if keyword == "EXPOSE"
            for p in rest.split()
        }


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching pattern wins;
    a pattern matching a parent directory matches its contents)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out)

    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = (raw[1:] if negated else raw).strip().strip("/")
        if any(regex(pattern).fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
