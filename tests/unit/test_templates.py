"""Every HTML part clerk can send is well formed and escapes what members write."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot import config as config_mod
from bot.plan.context import example_context
from bot.plan.notices import other_examples
from bot.render.templates import environment
from tests.conftest import EXAMPLE

VOID = frozenset({"br", "meta", "img", "hr", "link", "input"})


class WellFormed(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def contexts() -> list[tuple[str, dict[str, object]]]:
    group = config_mod.load(EXAMPLE.parent).groups[0]
    # a member and an organisation whose names need escaping in HTML
    tricky = replace(group.members[0], name="Ann <b>O'Neil</b> & Co",
                     organisation="Brighton & Hove <Unit>")
    group = replace(group, members=(tricky, *group.members[1:]))
    found = [(r.template, example_context(group, r)) for r in group.rules]
    found += [("cancellation", example_context(group, group.rules[0]))]
    found += other_examples(group)
    return found


@pytest.mark.parametrize("template,context", contexts(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_each_html_part_is_well_formed_and_escaped(template: str, context: dict[str, object],
                                                  tmp_path: Path):
    group = config_mod.load(EXAMPLE.parent).groups[0]
    html = environment(group).get_template(f"{template}.html.j2").render(context)
    parser = WellFormed()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    assert "<b>O'Neil</b>" not in html  # a member's name is text, never markup
    if "Ann" in "".join(parser.text):
        assert "Ann <b>O'Neil</b> & Co" in "".join(parser.text)


def test_a_group_loaded_again_sees_templates_added_since(config_dir: Path):
    """The environment is looked up once per loaded group, not once per render: a config
    loaded again (as the worker does on a change) is new groups, with the overrides as they
    are now — in the same process, with nothing cleared."""
    [before] = config_mod.load(config_dir).groups
    assert "Dear" in environment(before).get_template("invitation.txt.j2").render(
        example_context(before, before.rules[0]))
    overrides = config_dir / "example" / "templates"
    overrides.mkdir()
    (overrides / "invitation.txt.j2").write_text("Overridden for {{ recipient.name }}\n")
    [after] = config_mod.load(config_dir).groups
    text = environment(after).get_template("invitation.txt.j2").render(
        example_context(after, after.rules[0]))
    assert text.startswith("Overridden for ")
    assert environment(before) is not environment(after)


def test_a_config_loaded_again_checks_the_templates_of_the_groups_edited_alone(
        config_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The templates' check is kept per version of a group's files: loaded again after one
    group's edit, that group alone is checked; a broken override is still found."""
    from bot.config import checks
    from bot.domain.errors import ConfigError
    from tests.conftest import edit, second_group

    second_group(config_dir, "second")
    config_mod.load(config_dir)
    checked: list[str] = []
    real = checks._template_problems
    monkeypatch.setattr(checks, "_template_problems",
                        lambda group: checked.append(group.id) or real(group))
    config_mod.load(config_dir)
    assert checked == []
    edit(config_dir / "second" / "group.toml", "QA Leads Network meeting", "Second meeting")
    config_mod.load(config_dir)
    assert checked == ["second"]
    (config_dir / "second" / "templates").mkdir()
    (config_dir / "second" / "templates" / "invitation.txt.j2").write_text("{{ nope.x }}\n")
    with pytest.raises(ConfigError) as raised:
        config_mod.load(config_dir)
    assert any("invitation.txt.j2" in str(p) for p in raised.value.problems)
    assert checked == ["second", "second"]


@pytest.fixture()
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh process's view of the templates: nothing compiled, the cache under tmp."""
    from bot.render import templates

    def fresh() -> None:
        templates.clear_cache()
        templates._bytecode_cache.cache_clear()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CLERK_TEMPLATE_CACHE", raising=False)
    fresh()
    yield tmp_path / "cache"
    fresh()


def _invitation(config_dir: Path) -> str:
    [group] = config_mod.load(config_dir).groups
    return environment(group).get_template("invitation.txt.j2").render(
        example_context(group, group.rules[0]))


def test_the_shipped_templates_are_compiled_once_across_processes(
        config_dir: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The next process loads the shipped templates compiled (loading a config compiles
    every template to check it: most of a command's start), from a folder private to
    clerk's user; a group's own templates are compiled in each process, never cached."""
    import jinja2

    from bot.render import templates

    first = _invitation(config_dir)
    [folder] = (cache_home / "clerk" / "templates").iterdir()
    assert len(list(folder.iterdir())) >= 3 and folder.stat().st_mode & 0o077 == 0
    templates.clear_cache()  # the next process

    def no_compile(*args: object, **kw: object) -> None:
        raise AssertionError("a shipped template compiled again")

    monkeypatch.setattr(jinja2.Environment, "compile", no_compile)
    assert _invitation(config_dir) == first
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    cached = set(folder.iterdir())
    overrides = config_dir / "example" / "templates"
    overrides.mkdir()
    (overrides / "invitation.txt.j2").write_text("Overridden for {{ recipient.name }}\n")
    assert _invitation(config_dir).startswith("Overridden for ")
    assert set(folder.iterdir()) == cached  # the group's own: not kept


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no folder"])
def test_a_cache_that_cannot_be_used_is_no_cache(
        config_dir: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch, damage: str):
    """A damaged cache file is compiled again and a cache folder that cannot be made is
    none: the templates render the same, and nothing fails."""
    from jinja2.bccache import bc_magic

    from bot.render import templates

    first = _invitation(config_dir)
    [folder] = (cache_home / "clerk" / "templates").iterdir()
    for path in folder.iterdir():
        data = path.read_bytes()
        path.write_bytes(bc_magic + b"not jinja's" if damage == "garbage"
                         else data[:len(data) // 2])
    templates.clear_cache()
    if damage == "no folder":  # its parent is a file
        blocked = cache_home.parent / "blocked"
        blocked.write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
        templates._bytecode_cache.cache_clear()
        assert templates._bytecode_cache() is None
    assert _invitation(config_dir) == first


@pytest.mark.parametrize("planted", ["open to others", "a link"])
def test_a_cache_folder_others_could_write_is_not_used(
        config_dir: Path, cache_home: Path, planted: str, caplog: pytest.LogCaptureFixture):
    """Its files are run as code: a folder others may write to, or a link to somewhere else,
    is no cache (and a warning says why), and the templates still render."""
    from bot.render import templates

    first = _invitation(config_dir)
    [folder] = (cache_home / "clerk" / "templates").iterdir()
    if planted == "open to others":
        folder.chmod(0o777)
    else:
        elsewhere = cache_home / "elsewhere"
        folder.rename(elsewhere)
        folder.symlink_to(elsewhere, target_is_directory=True)
    templates.clear_cache()
    templates._bytecode_cache.cache_clear()
    assert templates._bytecode_cache() is None
    assert "not using" in caplog.text
    assert _invitation(config_dir) == first
