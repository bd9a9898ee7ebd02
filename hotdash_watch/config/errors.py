"""Errors a person can act on: what is wrong with a file they wrote, one line per field.

``describe_errors`` turns a pydantic ``ValidationError`` into such lines: each names the field
by its path as written in the file (``apps[0].health_url``) and says what is allowed there; an
unknown key lists the keys allowed in its table when the model is given, and a table whose
keys depend on its ``kind`` (a paging channel) is described as that kind's. ``InvalidInput``
carries the lines; ``ConfigError`` is the configuration's kind of it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

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


def read_toml(path: str | Path, error: type[InvalidInput]) -> dict[str, Any]:
    """The TOML file at ``path`` as a table; ``error`` (raised with the path as its source)
    says what is wrong in one line: missing, not TOML (with where), or unreadable."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise error(source, [f"{path}: no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(source, [f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise error(source, [f"{path}: cannot be read: {exc.strerror}"]) from None


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _quoted(values: list[str]) -> str:
    """``'a', 'b' or 'c'``: how pydantic lists the values a literal allows."""
    shown = [f"{v!r}" for v in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


@dataclass(frozen=True, slots=True)
class _Tagged:
    """A union of models told apart by one key (pydantic's discriminated union)."""

    key: str
    noun: str  # what one member is called in messages ("channel")
    members: dict[str, type[BaseModel]]  # tag -> model, in the union's order


def _tagged(annotation: Any, field: FieldInfo | None = None) -> _Tagged | None:
    """The discriminated union ``annotation`` (or ``field``) declares, if any."""
    info = field
    if get_origin(annotation) is Annotated:
        annotation, *meta = get_args(annotation)
        info = next((m for m in meta if isinstance(m, FieldInfo)), info)
    key = info.discriminator if info is not None else None
    if not isinstance(key, str):
        return None
    members: dict[str, type[BaseModel]] = {}
    for model in get_args(annotation):
        for tag in get_args(model.model_fields[key].annotation):
            members[str(tag)] = model
    return _Tagged(key, (info.title if info is not None else None) or "item", members)


def _inner(annotation: Any, field: FieldInfo | None = None) -> Any:
    """What a field holds, seen through ``X | None``: a model, a ``_Tagged``, or a list of
    either (as ``[item]``); None for plain values."""
    tagged = _tagged(annotation, field)
    if tagged is not None:
        return tagged
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        inner = _inner(item)
        return None if inner is None else [inner]
    if get_origin(annotation) not in (Union, UnionType):
        return None
    present = [a for a in get_args(annotation) if a is not type(None)]
    return _inner(present[0]) if len(present) == 1 else None


@dataclass(slots=True)
class _Place:
    """Where ``loc`` leads in the model: the path as written in the file (union tags left
    out), the model holding its last key, the union member taken on the way, and the union
    found at the end (when ``loc`` stops at one)."""

    path: list[int | str]
    holder: type[BaseModel] | None = None
    member: tuple[_Tagged, str] | None = None
    union: _Tagged | None = None


def _walk(loc: tuple[int | str, ...], model: type[BaseModel] | None) -> _Place:
    place = _Place([])
    node: Any = model
    for part in loc:
        if isinstance(node, _Tagged) and isinstance(part, str) and part in node.members:
            place.member = (node, part)
            node = node.members[part]
            continue
        place.path.append(part)
        if isinstance(node, type) and isinstance(part, str):
            place.holder = node
            field = node.model_fields.get(part)
            node = None if field is None else _inner(field.annotation, field)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[0]
        else:
            node = None
    place.union = node if isinstance(node, _Tagged) else None
    return place


def _describe(e: Any, model: type[BaseModel] | None) -> str:
    loc = tuple(e["loc"])
    place = _walk(loc, model)
    where = _path(tuple(place.path))
    of_kind = ""
    if place.member is not None:
        union, tag = place.member
        of_kind = f"a {tag} {union.noun}"
    if e["type"] == "extra_forbidden":
        key = loc[-1]
        head = f"{where}: unknown key" + (f" for {of_kind}" if of_kind else "")
        if place.member is not None:
            union, tag = place.member
            others = [t for t, m in union.members.items() if t != tag and key in m.model_fields]
            if others:
                head += f" ({' or '.join(f'a {t} {union.noun}' for t in others)} takes it)"
        allowed = sorted(place.holder.model_fields) if place.holder is not None else []
        return head + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
    if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
        ctx = e.get("ctx") or {}
        key = str(ctx.get("discriminator", "")).strip("'") or "tag"
        if place.union is not None:
            key, tags = place.union.key, list(place.union.members)
        else:
            tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        where = _path((*place.path, key))
        if e["type"] == "union_tag_not_found":
            return f"{where}: Field required (one of {_quoted(tags)})"
        return f"{where}: Input should be {_quoted(tags)} (got {ctx.get('tag')!r})"
    if place.union is not None and e["type"] in ("model_attributes_type", "dict_type"):
        union = place.union
        return (f"{where}: Input should be a table, one {union.noun} with {union.key} = "
                f"{_quoted(list(union.members))} (got {e.get('input')!r})")
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "missing" and of_kind:
        return f"{where}: {msg} ({of_kind} needs {loc[-1]})"
    shown = e.get("input")
    if isinstance(shown, (str, int, float, bool)) and e["type"] != "value_error":
        msg = f"{msg} (got {shown!r})"
    return f"{where}: {msg}"


def describe_errors(err: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem of ``err``, each starting with the field's path as written in the
    file.

    ``model`` is the model that raised ``err``; with it, an unknown key's line lists the keys
    allowed in its table, and a table of a union told apart by a key (``kind``) is described
    as that kind's: ``notify.channels[0].url: Field required (a slack channel needs url)``.
    """
    return [_describe(e, model) for e in err.errors(include_url=False)]
