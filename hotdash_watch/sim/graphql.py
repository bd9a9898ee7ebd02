"""A very small GraphQL executor: enough of Fly's schema for the releases query.

It parses a single query operation (variables, aliases, arguments, nested selections; no
fragments, directives or mutations) and resolves it against plain Python resolvers, returning
only the fields that were asked for, as a GraphQL server does. Errors come back the GraphQL way:
``{"data": …, "errors": [{"message": …}]}`` (the HTTP status stays 200).

The part of Fly's GraphQL schema it serves::

    Query.app(name: String!): App
    App { id name status
          releasesUnprocessed(first, last, status): ReleaseConnection   (also: releases)
          currentReleaseUnprocessed: Release                            (also: currentRelease) }
    ReleaseConnection { nodes: [Release] totalCount pageInfo { hasNextPage hasPreviousPage } }
    Release { id version description reason status imageRef stable inProgress
              deploymentStrategy evaluationId createdAt updatedAt user { id email name } }
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GraphQLError", "Selection", "execute", "parse"]

_TOKEN = re.compile(
    r"""(?P<ws>[\s,]+|\#[^\n]*)
      | (?P<spread>\.\.\.)
      | (?P<punct>[{}()\[\]:!$=@])
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


class GraphQLError(Exception):
    """A query that cannot be parsed or resolved; its message goes into ``errors[]``."""


@dataclass(frozen=True, slots=True)
class Selection:
    """One field of a selection set: ``alias: name(args) { children }``."""

    name: str
    alias: str
    args: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Selection, ...] = ()


class _Var:
    """A ``$variable`` reference inside arguments, resolved at execution."""

    def __init__(self, name: str) -> None:
        self.name = name


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise GraphQLError(f"Parse error on {text[pos:pos + 10]!r} at offset {pos}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            out.append((kind, m.group()))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise GraphQLError("Parse error: unexpected end of query")
        if (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = value or kind
            raise GraphQLError(f"Parse error on {tok[1]!r}: expected {want}")
        self.i += 1
        return tok[1]

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value and tok[0] != "string"

    def document(self) -> tuple[tuple[Selection, ...], dict[str, Any]]:
        defaults: dict[str, Any] = {}
        if self.at("mutation") or self.at("subscription"):
            raise GraphQLError("the simulator answers queries only")
        if self.at("query"):
            self.take("query")
            tok = self.peek()
            if tok is not None and tok[0] == "name":
                self.take()
            if self.at("("):
                defaults = self.var_defs()
        sels = self.selection_set()
        if self.peek() is not None:
            raise GraphQLError("the simulator answers one operation per request")
        return sels, defaults

    def var_defs(self) -> dict[str, Any]:
        defaults: dict[str, Any] = {}
        self.take("(")
        while not self.at(")"):
            self.take("$")
            name = self.take(kind="name")
            self.take(":")
            self.type_ref()
            if self.at("="):
                self.take("=")
                defaults[name] = self.value()
        self.take(")")
        return defaults

    def type_ref(self) -> None:
        if self.at("["):
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.at("!"):
            self.take("!")

    def selection_set(self) -> tuple[Selection, ...]:
        self.take("{")
        out: list[Selection] = []
        while not self.at("}"):
            if self.at("..."):
                raise GraphQLError("fragments are not supported by the simulator")
            name = self.take(kind="name")
            alias = name
            if self.at(":"):
                self.take(":")
                name = self.take(kind="name")
            args: dict[str, Any] = {}
            if self.at("("):
                self.take("(")
                while not self.at(")"):
                    key = self.take(kind="name")
                    self.take(":")
                    args[key] = self.value()
                self.take(")")
            if self.at("@"):
                raise GraphQLError("directives are not supported by the simulator")
            children = self.selection_set() if self.at("{") else ()
            out.append(Selection(name, alias, args, children))
        self.take("}")
        if not out:
            raise GraphQLError("Parse error: empty selection set")
        return tuple(out)

    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise GraphQLError("Parse error: unexpected end of query")
        kind, text = tok
        if text == "$" and kind == "punct":
            self.take("$")
            return _Var(self.take(kind="name"))
        if kind == "string":
            self.take()
            return json.loads(text)
        if kind == "number":
            self.take()
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            self.take()
            return {"true": True, "false": False, "null": None}.get(text, text)
        if text == "[":
            self.take("[")
            items = []
            while not self.at("]"):
                items.append(self.value())
            self.take("]")
            return items
        raise GraphQLError(f"Parse error on {text!r}: expected a value")


def parse(query: str) -> tuple[tuple[Selection, ...], dict[str, Any]]:
    """The root selections of ``query`` and its variables' default values."""
    return _Parser(query).document()


Resolver = Callable[[Any, Mapping[str, Any]], Any]
"""Resolves one field: (parent value, arguments) → value (a dict, list, scalar or None)."""


@dataclass(frozen=True, slots=True)
class ObjectType:
    """A GraphQL object type: field name → (resolver, type of the result or None for scalars)."""

    name: str
    fields: Mapping[str, tuple[Resolver, ObjectType | None]]


def execute(schema: ObjectType, query: str, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    """Run ``query`` against ``schema`` (the Query type); a GraphQL response document."""
    try:
        sels, defaults = parse(query)
        env = {**defaults, **(variables or {})}
        data = _resolve_object(schema, None, sels, env)
    except GraphQLError as e:
        return {"data": None, "errors": [{"message": str(e)}]}
    errors = data.pop("__errors__", None)
    out: dict[str, Any] = {"data": data}
    if errors:
        out["errors"] = errors
    return out


def _args(sel: Selection, env: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sel.args.items():
        if isinstance(v, _Var):
            if v.name not in env:
                raise GraphQLError(f"Variable ${v.name} is used by {sel.name} but not declared "
                                   "or has no value")
            out[k] = env[v.name]
        else:
            out[k] = v
    return out


def _resolve_object(typ: ObjectType, parent: Any, sels: tuple[Selection, ...],
                    env: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for sel in sels:
        if sel.name == "__typename":
            out[sel.alias] = typ.name
            continue
        if sel.name not in typ.fields:
            raise GraphQLError(f"Field '{sel.name}' doesn't exist on type '{typ.name}'")
        resolver, sub = typ.fields[sel.name]
        try:
            value = resolver(parent, _args(sel, env))
        except LookupError as e:  # a resolver's "not found": null plus an error, like Fly
            out[sel.alias] = None
            errors.append({"message": str(e.args[0]) if e.args else "not found"})
            continue
        out[sel.alias] = _complete(sub, value, sel, env)
    if errors:
        out["__errors__"] = errors
    return out


def _complete(sub: ObjectType | None, value: Any, sel: Selection, env: Mapping[str, Any]) -> Any:
    if value is None:
        return None
    if sub is None:
        if sel.children:
            raise GraphQLError(f"Selections can't be made on scalars (field '{sel.name}')")
        return value
    if not sel.children:
        raise GraphQLError(f"Field must have selections (field '{sel.name}' returns {sub.name})")
    if isinstance(value, list):
        return [_strip(_resolve_object(sub, v, sel.children, env)) for v in value]
    return _strip(_resolve_object(sub, value, sel.children, env))


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    obj.pop("__errors__", None)
    return obj
