"""Errors a person can act on: what is wrong with a file they wrote, one line per field.

``describe_errors`` turns a pydantic ``ValidationError`` into such lines: each names the field
by its path as written in the file (``apps[0].health_url``) and says what is allowed there; an
unknown key lists the keys allowed in its table when the model is given. ``InvalidInput``
carries the lines; ``ConfigError`` is the configuration's kind of it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "InvalidInput", "describe_errors"]


class InvalidInput(Exception):
    """A file a person wrote cannot be used; ``problems`` holds one line per invalid field."""

    what = "input"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"invalid {self.what} ({self.source}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class ConfigError(InvalidInput):
    """The configuration cannot be used."""

    what = "configuration"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _allowed_keys(loc: tuple[int | str, ...], model: Any) -> list[str]:
    """The keys allowed where an unknown key was found, by walking ``model`` along ``loc``."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
                     None)
        if model is None:
            return []
    return sorted(model.model_fields)


def describe_errors(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem of ``err``, each starting with the field's path.

    ``model`` is the model that raised ``err``; with it, an unknown key's line lists the keys
    allowed in its table.
    """
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        where = _path(loc)
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc, model) if model is not None else []
            hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
            problems.append(f"{where}: unknown key{hint}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        shown = e.get("input")
        if isinstance(shown, (str, int, float, bool)) and e["type"] != "value_error":
            msg = f"{msg} (got {shown!r})"
        problems.append(f"{where}: {msg}")
    return problems
