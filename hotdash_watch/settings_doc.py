"""The settings reference, generated from the settings model so it cannot drift from it.

``render()`` walks ``config.Settings`` (top-level keys, every section, and the items of lists
such as ``[[apps]]`` and ``[[notify.channels]]``) and writes one Markdown table per section:
the key as written in TOML, its environment variable, type, default and meaning (the field's
description). A list of tables whose keys depend on one of them (a channel's ``kind``) gets a
table of the keys every item has, then one table per kind with that kind's own keys.
README.md carries the output between the markers below; a test fails when it is out of date.

    python -m hotdash_watch.settings_doc            # print the reference
    python -m hotdash_watch.settings_doc --write    # replace the block in README.md
    python -m hotdash_watch.settings_doc --check    # exit 1 when README.md's block differs
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import types
import typing
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from hotdash_watch.config import ENV_PREFIX, Settings

__all__ = ["BEGIN", "END", "Row", "Table", "current_block", "main", "render", "replace_block",
           "tables"]

BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"
COMMAND = "make docs"


@dataclass(frozen=True, slots=True)
class Row:
    """One setting: its TOML key, environment variable, type, default and meaning."""

    key: str
    env: str
    type: str
    default: str
    meaning: str


@dataclass(frozen=True, slots=True)
class Table:
    """The settings of one section (or of one item of a list of tables)."""

    title: str
    doc: str
    rows: tuple[Row, ...]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


@dataclass(frozen=True, slots=True)
class _Union:
    """Models told apart by the value of one key (pydantic's discriminated union)."""

    key: str
    members: tuple[type[BaseModel], ...]

    def tags(self) -> dict[str, type[BaseModel]]:
        return {str(tag): m for m in self.members
                for tag in get_args(m.model_fields[self.key].annotation)}

    def base(self) -> type:
        """The most derived class every member extends."""
        return next(c for c in self.members[0].__mro__
                    if all(issubclass(m, c) for m in self.members))

    def shared(self) -> list[str]:
        """The keys every member has as one field (those of their common base), in order."""
        names = list(getattr(self.base(), "model_fields", {})) or [self.key]
        return names if self.key in names else [self.key, *names]


def _union_in(annotation: Any) -> _Union | None:
    if get_origin(annotation) is not Annotated:
        return None
    inner, *meta = get_args(annotation)
    info = next((m for m in meta if isinstance(m, FieldInfo)), None)
    if info is None or not isinstance(info.discriminator, str):
        return None
    members = tuple(m for m in get_args(inner) if _model_in(m) is not None)
    return _Union(info.discriminator, members) if members else None


def _list_item_model(annotation: Any) -> type[BaseModel] | _Union | None:
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        return _model_in(item) or _union_in(item)
    return None


def _type_name(annotation: Any, name: str) -> str:
    origin = get_origin(annotation)
    if annotation is SecretStr:
        return "secret"
    if origin in (typing.Union, types.UnionType):
        present = [a for a in get_args(annotation) if a is not type(None)]
        inner = " or ".join(_type_name(a, name) for a in present)
        return inner if inner == "secret" else f"{inner}, optional"
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation)
        if _model_in(item):
            return "list of tables"
        if get_origin(item) is Literal:
            return "list, each one of " + ", ".join(f"`{v}`" for v in get_args(item))
        return "list of " + {str: "strings", int: "integers", float: "numbers"}.get(
            item, _type_name(item, ""))
    if annotation is float:
        return "seconds" if name.endswith("_s") else "number"
    return {str: "string", int: "integer", bool: "boolean"}.get(annotation, str(annotation))


def _constraints(field: FieldInfo) -> str:
    out = []
    for m in field.metadata:
        if isinstance(m, annotated_types.Gt):
            out.append(f"> {m.gt}")
        elif isinstance(m, annotated_types.Ge):
            out.append(f"≥ {m.ge}")
        elif isinstance(m, annotated_types.Lt):
            out.append(f"< {m.lt}")
        elif isinstance(m, annotated_types.Le):
            out.append(f"≤ {m.le}")
        elif isinstance(m, annotated_types.MinLen) and m.min_length > 0:
            out.append(f"at least {m.min_length}")
        elif getattr(m, "pattern", None):
            out.append(f"matching `{m.pattern}`")
    return ", ".join(out)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None \
        else field.default  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _doc(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or ""
    if model.__doc__ is None or doc == inspect.getdoc(BaseModel):
        return ""
    return doc.replace("``", "`")


def _rows(model: type[BaseModel], key_prefix: str, env_prefix: str | None,
          list_env: str | None, only: Collection[str] | None = None) -> Iterator[Row | Table]:
    """Rows of ``model`` (of its fields named in ``only``, when given) in declaration order;
    nested sections and lists of tables follow as their own tables (after the rows)."""
    nested: list[Table] = []
    for name, field in model.model_fields.items():
        if only is not None and name not in only:
            continue
        key = f"{key_prefix}{name}"
        env = f"{env_prefix}{name.upper()}" if env_prefix is not None else None
        env_cell = f"`{env}`" if env else "—"
        section = _model_in(field.annotation)
        item = _list_item_model(field.annotation)
        if section is not None:
            nested += _tables(section, f"[{key}]", f"{key}.",
                              f"{env}__" if env else None, list_env)
            continue
        type_name = _type_name(field.annotation, name)
        limits = _constraints(field)
        if limits:
            type_name = f"{type_name}, {limits}"
        meaning = field.description or ""
        if item is not None:
            item_env = env or list_env
            type_name = f"list of tables, see `[[{key}]]`"
            nested += (_union_tables(item, key, item_env) if isinstance(item, _Union)
                       else _tables(item, f"[[{key}]]", f"{key}[].", None, item_env))
            if env:
                meaning = (meaning + "; " if meaning else "") + f"from the environment: `{env}` " \
                    "holds the whole list as JSON"
        yield Row(key, env_cell, type_name, _default(field), meaning)
    yield from nested


def _list_note(title: str, list_env: str) -> str:
    return (f"Each `{title}` table is one item of a list; from the environment the whole "
            f"list is one JSON value in `{list_env}`.")


def _tables(model: type[BaseModel], title: str, key_prefix: str, env_prefix: str | None,
            list_env: str | None, only: Collection[str] | None = None,
            doc: str | None = None) -> list[Table]:
    rows: list[Row] = []
    after: list[Table] = []
    for r in _rows(model, key_prefix, env_prefix, list_env, only):
        (rows if isinstance(r, Row) else after).append(r)  # type: ignore[arg-type]
    if doc is None:
        doc = _doc(model)
        if env_prefix is None and list_env is not None:
            note = _list_note(title, list_env)
            doc = f"{doc}\n\n{note}" if doc else note
    return ([Table(title, doc, tuple(rows))] if rows else []) + after


def _union_tables(union: _Union, key: str, list_env: str | None) -> list[Table]:
    """``[[key]]``: the keys every item has, its discriminator first among them; then one
    table per kind of item with that kind's own keys."""
    title, prefix, tags = f"[[{key}]]", f"{key}[].", union.tags()
    shared = union.shared()
    first = union.members[0]
    rows: list[Row] = []
    for name in shared:
        if name == union.key:
            meaning = "; ".join(f"`{t}`: {m.model_fields[name].description or t}"
                                for t, m in tags.items())
            rows.append(Row(f"{prefix}{name}", "—",
                            "one of " + ", ".join(f"`{t}`" for t in tags), "required", meaning))
        else:
            rows += [r for r in _rows(first, prefix, None, list_env, [name])
                     if isinstance(r, Row)]
    base = union.base()
    doc = [_doc(base)] if issubclass(base, BaseModel) else []
    if list_env is not None:
        doc.append(_list_note(title, list_env))
    doc.append(f"The other keys depend on `{union.key}`: see the table of each `{union.key}` "
               "below.")
    out = [Table(title, "\n\n".join(d for d in doc if d), tuple(rows))]
    for tag, member in tags.items():
        own = [n for n in member.model_fields if n not in shared]
        out += _tables(member, f'{title} with {union.key} = "{tag}"', prefix, None, list_env,
                       only=own, doc=_doc(member))
    return out


def tables(model: type[BaseModel] = Settings) -> list[Table]:
    """Every table of the reference: top-level keys first, then each section in order."""
    return _tables(model, "Top level", "", ENV_PREFIX, None)


def render(model: type[BaseModel] = Settings) -> str:
    """The reference as Markdown, markers included."""
    out = [BEGIN,
           f"<!-- generated from the settings models by `{COMMAND}`; do not edit here -->",
           ""]
    for t in tables(model):
        out += [f"#### {t.title}", ""]
        if t.doc:
            out += [t.doc, ""]
        out += ["| key | environment | type | default | meaning |",
                "|---|---|---|---|---|"]
        out += [f"| `{r.key}` | {r.env} | {_cell(r.type)} | {_cell(r.default)} | "
                f"{_cell(r.meaning)} |" for r in t.rows]
        out.append("")
    out.append(END)
    return "\n".join(out)


def replace_block(text: str, block: str) -> str:
    """``text`` with everything from BEGIN to END (markers included) replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} block to replace")
    return text[:start] + block + text[end + len(END):]


def current_block(text: str) -> str | None:
    """The block between the markers of ``text`` (markers included), or None."""
    start, end = text.find(BEGIN), text.find(END)
    return None if start < 0 or end < start else text[start:end + len(END)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hotdash_watch.settings_doc",
        description="Print the settings reference, or write it into README.md.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the block in the file")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 when the file's block differs from the settings model")
    parser.add_argument("file", nargs="?", default="README.md", type=Path,
                        help="Markdown file with the markers (default README.md)")
    args = parser.parse_args(argv)
    block = render()
    if not (args.write or args.check):
        print(block)
        return 0
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as e:
        print(f"{args.file}: {e.strerror}", file=sys.stderr)
        return 2
    if current_block(text) is None:
        print(f"{args.file}: no {BEGIN} ... {END} block", file=sys.stderr)
        return 2
    if args.check:
        if current_block(text) != block:
            print(f"{args.file}: the settings reference is out of date; run `{COMMAND}`",
                  file=sys.stderr)
            return 1
        return 0
    args.file.write_text(replace_block(text, block), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
