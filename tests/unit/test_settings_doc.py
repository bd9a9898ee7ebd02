"""The settings reference is generated from the settings model, and README.md carries the
current one."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from hotdash_watch.config import Settings, load_settings
from hotdash_watch.notify.channels import CHANNEL_MODELS
from hotdash_watch.settings_doc import (
    BEGIN,
    END,
    current_block,
    main,
    render,
    replace_block,
    tables,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _models(item: object) -> list[type[BaseModel]]:
    """The model of a list's item, or every member of a union of models (``Annotated``)."""
    if typing.get_origin(item) is Annotated:
        item = typing.get_args(item)[0]
    members = typing.get_args(item) or (item,)
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every setting's TOML key, walked independently of the generator."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= leaf_keys(ann, f"{prefix}{name}.")
            continue
        out.add(prefix + name)
        (item,) = getattr(ann, "__args__", (None,))[:1] or (None,)
        for m in _models(item):
            out |= leaf_keys(m, f"{prefix}{name}[].")
    return out


def rows() -> dict[str, object]:
    """Rows by key; a key in several tables (a channel's ``url``) keeps its last row."""
    return {r.key: r for t in tables() for r in t.rows}


def table(title: str):
    [found] = [t for t in tables() if t.title == title]
    return found


class TestReadme:
    def test_readme_block_is_current(self):
        """README.md's settings reference equals what the settings model generates now."""
        block = current_block(README.read_text(encoding="utf-8"))
        assert block is not None, f"README.md lost its {BEGIN} ... {END} markers"
        assert block == render(), (
            "README.md's settings reference differs from the settings models: run "
            "`make docs` (or .venv/bin/python -m hotdash_watch.settings_doc --write) and "
            "commit README.md")


class TestTables:
    def test_every_setting_has_a_row(self):
        """Every key of the model, in nested sections and in list items, has a row, once per
        table, and there is no row for a key the model lacks."""
        for t in tables():
            keys = [r.key for r in t.rows]
            assert len(keys) == len(set(keys)), t.title
        assert {r.key for t in tables() for r in t.rows} == leaf_keys(Settings)

    def test_sections_and_list_items_are_tables(self):
        """Top-level keys come first; each section and each list of tables has its own."""
        titles = [t.title for t in tables()]
        assert titles[0] == "Top level"
        for title in ("[server]", "[thresholds]", "[fly]", "[notify]", "[mitigation]",
                      "[[apps]]", "[[notify.channels]]"):
            assert title in titles
        kinds = [f'[[notify.channels]] with kind = "{k}"' for k in CHANNEL_MODELS]
        start = titles.index("[[notify.channels]]")
        assert titles[start + 1:start + 1 + len(kinds)] == kinds

    @pytest.mark.parametrize("kind", sorted(CHANNEL_MODELS))
    def test_each_channel_kind_documents_its_keys(self, kind: str):
        """The channels' table has the keys every kind has, ``kind`` among them with each
        kind's meaning; each kind's table has exactly that kind's other keys."""
        shared = table("[[notify.channels]]")
        shared_keys = [r.key.removeprefix("notify.channels[].") for r in shared.rows]
        assert shared_keys == ["name", "kind", "min_severity", "timeout_s"]
        [kind_row] = [r for r in shared.rows if r.key == "notify.channels[].kind"]
        assert f"`{kind}`" in kind_row.type and f"`{kind}`: " in kind_row.meaning
        assert kind_row.default == "required"
        own = table(f'[[notify.channels]] with kind = "{kind}"')
        model = CHANNEL_MODELS[kind]
        assert [r.key.removeprefix("notify.channels[].") for r in own.rows] == [
            n for n in model.model_fields if n not in shared_keys]
        assert own.doc and all(r.meaning for r in own.rows)

    def test_discriminated_union_of_any_models(self):
        """Any list of a union told apart by a key renders the shared keys, then each
        member's own keys, without knowing about channels."""

        class Item(BaseModel):
            """An item."""

            kind: str
            label: str = Field("x", description="what it is called")

        class Circle(Item):
            """A circle."""

            kind: Literal["circle"] = Field("circle", description="round")
            radius: float = Field(description="half the width")

        class Square(Item):
            """A square."""

            kind: Literal["square"] = Field("square", description="four sides")
            side: float = Field(description="the width")

        class Drawing(BaseModel):
            shapes: list[Annotated[Circle | Square, Field(discriminator="kind")]] = Field(
                default_factory=list, description="what is drawn")

        got = {t.title: [(r.key, r.type, r.meaning) for r in t.rows] for t in tables(Drawing)}
        assert got == {
            "Top level": [("shapes", "list of tables, see `[[shapes]]`",
                           "what is drawn; from the environment: `HOTDASH_WATCH_SHAPES` "
                           "holds the whole list as JSON")],
            "[[shapes]]": [("shapes[].kind", "one of `circle`, `square`",
                            "`circle`: round; `square`: four sides"),
                           ("shapes[].label", "string", "what it is called")],
            '[[shapes]] with kind = "circle"': [("shapes[].radius", "number", "half the width")],
            '[[shapes]] with kind = "square"': [("shapes[].side", "number", "the width")],
        }

    def test_secrets_say_secret(self):
        """A SecretStr setting is typed "secret" and never shows a value."""
        r = rows()
        for key in ("server.api_token", "server.hooks_token", "server.metrics_token",
                    "fly.api_token"):
            assert r[key].type == "secret", key
            assert r[key].default == "unset", key
        secrets = {"url", "routing_key", "hmac_secret"}
        channel_secrets = [r for t in tables() if t.title.startswith("[[notify.channels]] ")
                           for r in t.rows if r.key.removeprefix("notify.channels[].") in secrets]
        assert len(channel_secrets) == 6
        for row in channel_secrets:
            assert row.type == "secret", row.key
            assert row.default in ("unset", "required"), row.key

    def test_rows_carry_type_default_and_meaning(self):
        """A row shows the type with its limits, the default as TOML, and the description."""
        r = rows()["thresholds.sev1_error_ratio"]
        assert (r.type, r.default) == ("number, > 0, ≤ 1", "`0.5`")
        assert r.meaning == "SEV-1 above this error ratio"
        assert rows()["apps[].name"].default == "required"
        assert rows()["dry_run"].default == "`false`"

    def test_field_without_description_has_empty_meaning(self):
        """A field without a description renders an empty meaning, not a made-up one."""

        class Bare(BaseModel):
            plain: int = 3

        [table] = tables(Bare)
        assert [(r.key, r.meaning) for r in table.rows] == [("plain", "")]

    def test_every_setting_says_what_it_means(self):
        """Every setting of the real model has a description for the reference."""
        assert [k for k, r in rows().items() if not r.meaning] == []

    @pytest.mark.parametrize(("key", "value", "read"), [
        ("dry_run", "true", lambda s: s.dry_run is True),
        ("server.port", "9999", lambda s: s.server.port == 9999),
        ("server.hooks_token", "tok-from-env", lambda s:
            s.server.hooks_token.get_secret_value() == "tok-from-env"),
        ("mitigation.cooldown_s", "5", lambda s: s.mitigation.cooldown_s == 5),
        ("mitigation.allowed_actions", '["restart"]',
         lambda s: s.mitigation.allowed_actions == ["restart"]),
        ("apps", '[{"name": "a", "health_url": "http://a.internal/health"}]',
         lambda s: [a.name for a in s.apps] == ["a"]),
    ])
    def test_environment_names_are_the_ones_read(self, monkeypatch: pytest.MonkeyPatch,
                                                 key: str, value: str, read):
        """The environment variable a row names is the one the settings actually read."""
        env = rows()[key].env.strip("`")
        monkeypatch.setenv(env, value)
        assert read(load_settings(None))


class TestWriting:
    def test_replace_block_is_idempotent(self):
        """Replacing the block keeps the text around it, and doing it twice changes nothing."""
        text = f"# top\n\n{BEGIN}\nold\n{END}\n\nbottom\n"
        once = replace_block(text, render())
        assert once.startswith("# top\n\n") and once.endswith("\n\nbottom\n")
        assert replace_block(once, render()) == once

    def test_replace_block_needs_markers(self):
        """A file without the markers is refused, not appended to."""
        with pytest.raises(ValueError, match="settings:begin"):
            replace_block("no markers", render())

    def test_check_and_write(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        """--check exits 1 on a stale block and says to run make docs; --write mends it."""
        doc = tmp_path / "README.md"
        doc.write_text(f"intro\n{BEGIN}\nstale\n{END}\n")
        assert main(["--check", str(doc)]) == 1
        assert "make docs" in capsys.readouterr().err
        assert main(["--write", str(doc)]) == 0
        assert main(["--check", str(doc)]) == 0
        assert doc.read_text().startswith("intro\n" + BEGIN)
        assert main(["--check", str(tmp_path / "missing.md")]) == 2
