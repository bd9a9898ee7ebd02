"""A small Dockerfile reader for the tests: instructions, stages, exec-form arguments."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Instruction", "Stage", "dockerignore_excludes", "parse_dockerfile"]


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    args: str  # the rest, continuation lines joined
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(.*)$", text, re.S)
            text = m.group(1) if m else ""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) \
            else None

    @property
    def flags(self) -> dict[str, str]:
        """``--name=value`` options at the start of the arguments (COPY --from, HEALTHCHECK)."""
        return dict(re.findall(r"--([a-z-]+)=(\S+)", self.args.split(" CMD ")[0]))


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages in order, each with its instructions (comments dropped, continuations joined)."""
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        text = " ".join(p for p in pending if p)
        pending = []
        keyword, _, args = text.partition(" ")
        ins = Instruction(keyword.upper(), args.strip(), start)
        if ins.keyword == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", ins.args, re.I)
            assert m, f"line {n}: cannot read FROM {ins.args!r}"
            stages.append(Stage(m.group(1), m.group(2)))
        else:
            assert stages, f"line {n}: {ins.keyword} before any FROM"
        stages[-1].instructions.append(ins)
    assert not pending, "the Dockerfile ends inside a continued line"
    return stages


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether ``path`` (relative, with /) is left out of the build context: the last pattern
    that matches it or one of its parent directories wins; ``!`` re-includes."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        regex = fnmatch.translate(pat).replace(".*", "[^/]*")
        regex = regex.replace("[^/]*[^/]*/", "(?:.*/)?")  # ** as any number of directories
        if any(re.match(regex, p) for p in prefixes):
            excluded = not negate
    return excluded
