"""The documentation holds: every command, option and argument is in docs/commands.md, the
README stays short with working links, its "first group" steps work as written, and the
systemd unit in contrib/ is a valid one that runs `clerk run`."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

from bot.cli.main import cli
from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
COMMANDS = DOCS / "commands.md"
UNIT = ROOT / "contrib" / "clerk.service"

# A heading that names a command: "## `clerk`", "### `clerk actions add`"
COMMAND_HEADING = re.compile(r"^(#{2,4}) `(clerk(?: [a-z][a-z-]*)*)`$", re.MULTILINE)


def _commands() -> list[tuple[str, click.Command]]:
    """Every command, with the groups' subcommands: ("clerk actions add", its command)."""
    found: list[tuple[str, click.Command]] = []

    def walk(name: str, command: click.Command) -> None:
        found.append((name, command))
        if isinstance(command, click.Group):
            for sub, child in sorted(command.commands.items()):
                walk(f"{name} {sub}", child)

    walk("clerk", cli)
    return found


def _sections(text: str) -> dict[str, str]:
    """Each command heading's section: up to the next heading of the same or a higher level."""
    headings = list(re.finditer(r"^(#{1,6}) .*$", text, re.MULTILINE))
    out: dict[str, str] = {}
    for i, m in enumerate(headings):
        named = COMMAND_HEADING.fullmatch(m.group(0))
        if not named:
            continue
        level = len(named.group(1))
        end = next((h.start() for h in headings[i + 1:] if len(h.group(1)) <= level),
                   len(text))
        assert named.group(2) not in out, f"docs/commands.md: two sections {m.group(0)}"
        out[named.group(2)] = text[m.end():end]
    return out


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name,command", _commands(), ids=lambda v: str(v))
def test_every_command_option_and_argument_is_in_docs_commands(name: str,
                                                               command: click.Command):
    sections = _sections(COMMANDS.read_text(encoding="utf-8"))
    assert name in sections, f"docs/commands.md has no heading `{name}` (## or ###)"
    section = sections[name]
    # the help's first paragraph, word for word (line breaks may differ)
    with click.Context(command, info_name=name) as ctx:
        assert command.get_help(ctx)  # the help renders
    first = (command.help or "").strip().split("\n\n")[0]
    assert first, f"{name} has no help"
    assert _flat(first) in _flat(section), f"{name}: its help line is not in its section"
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", section), \
                    f"{name}: {opt} is not in its section of docs/commands.md"
        elif isinstance(param, click.Argument):
            word = param.human_readable_name.rstrip(".")
            assert re.search(rf"\b{re.escape(word)}\b", section), \
                f"{name}: its argument {word} is not in its section of docs/commands.md"


def test_docs_commands_names_no_command_that_does_not_exist():
    named = set(_sections(COMMANDS.read_text(encoding="utf-8")))
    assert named - {name for name, _ in _commands()} == set()


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; at most 200"
    assert lines[:6] == [
        "# clerk", "", "```sh",
        "make run    # create .venv, install clerk, check config/example, show the plan, "
        "start the worker",
        "make test   # install what the tests need and run the whole suite", "```"]
    assert "## Dependencies" in text  # a short table; the whole one in docs/development.md


def _links(path: Path) -> list[str]:
    """The relative links of a Markdown file, without their #anchor."""
    found = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    return [link.split("#")[0] for link in found
            if not re.match(r"^[a-z]+:", link) and not link.startswith("#")]


def test_readme_links_exist_and_every_docs_page_is_linked():
    links = _links(README)
    for link in links:
        assert (ROOT / link).exists(), f"README.md links to {link}, which does not exist"
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert pages <= set(links), f"README.md does not link {sorted(pages - set(links))}"
    assert {"docs/configuration.md", "docs/commands.md", "docs/transports.md",
            "docs/operations.md", "docs/design.md", "docs/development.md"} <= pages


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_links_between_docs_pages_exist(page: Path):
    for link in _links(page):
        assert (page.parent / link).resolve().exists(), f"{page.name} links to {link}"


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.*)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_anchors_into_docs_pages_exist(page: Path):
    text = page.read_text(encoding="utf-8")
    for target, anchor in re.findall(r"\]\(([^)\s#]*)#([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        other = (page.parent / target) if target else page
        assert anchor in _anchors(other.read_text(encoding="utf-8")), \
            f"{page.name}: no heading #{anchor} in {other.name}"


# ---------------------------------------------------------------------------------------
# The README's "first group" steps, followed as written

def _first_group_section() -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Your first group in five steps$(.*?)(?=^## )", text,
                  re.MULTILINE | re.DOTALL)
    assert m, "README.md has no section '## Your first group in five steps'"
    return m.group(1)


def _blocks(section: str) -> list[tuple[str, str]]:
    """(language, text) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


def _commands_of(block: str) -> list[list[str]]:
    """The shell commands of a block: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


CLERK_WORDS = ("clerk", ".venv/bin/clerk")


@pytest.mark.slow
def test_the_readme_first_group_steps_work_as_written(tmp_path: Path):
    """Each command of the section's ```sh blocks is run in a fresh copy of the repository's
    config files, in order. `clerk` runs as this interpreter's `python -m bot.cli` on this
    checkout, with one change: `--now` right after it (a fixed instant well before the
    README's first meeting), since no test may read the real clock. `make .venv/.installed`
    is checked with `make -n` (this test runs in an installed environment); the roster step
    appends the ```csv block's lines to the roster the README names; `clerk run` is started
    and stopped with SIGINT once it has ticked."""
    section = _first_group_section()
    blocks = _blocks(section)
    assert [lang for lang, _ in blocks].count("csv") == 1, "one ```csv block: the members"
    work = tmp_path / "clone"
    work.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(ROOT / "config", work / "config")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))

    init = next(words for lang, block in blocks if lang == "sh"
                for words in _commands_of(block) if words[0] in CLERK_WORDS
                and words[1] == "init")
    folder = init[2]
    first = datetime.fromisoformat(init[init.index("--first-meeting") + 1])
    now = (first.replace(tzinfo=UTC) - timedelta(days=120)).isoformat()  # go-live that day

    seen: dict[str, str] = {}
    added = 0
    for lang, block in blocks:
        if lang == "csv":
            lines = [x for x in block.splitlines() if x and x != "name,email,organisation,role"]
            assert f"{folder}/roster.csv" in section, "the README names the roster it edits"
            with (work / folder / "roster.csv").open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            added += len(lines)
            continue
        assert lang == "sh", f"a ```{lang} block in the steps"
        for words in _commands_of(block):
            if words[0] == "export":
                for assignment in words[1:]:
                    key, _, value = assignment.partition("=")
                    env[key] = value
            elif words[0] == "make":
                assert words[1:] == [".venv/.installed"], words
                if shutil.which("make"):
                    dry = subprocess.run(["make", "-n", *words[1:]], cwd=work, env=env,
                                         capture_output=True, text=True, timeout=60)
                    assert dry.returncode == 0, dry.stderr
            elif words[0] in CLERK_WORDS:
                argv = [sys.executable, "-m", "bot.cli", "--now", now, *words[1:]]
                if words[1] == "run":
                    seen["run"] = _run_briefly(argv, work, env, tmp_path / "run.log")
                    continue
                done = subprocess.run(argv, cwd=work, env=env, capture_output=True,
                                      text=True, timeout=120)
                assert done.returncode == 0, f"{shlex.join(words)}:\n{done.stdout}{done.stderr}"
                seen[words[1]] = done.stdout
            else:
                pytest.fail(f"the README's steps run {words[0]!r}: teach this test what it is")

    assert set(seen) == {"init", "check", "plan", "run"}, sorted(seen)
    group = tomllib.loads((work / folder / "group.toml").read_text(encoding="utf-8"))
    group_id = init[init.index("--id") + 1] if "--id" in init else Path(folder).name
    assert group["group"]["name"] == init[init.index("--name") + 1]
    assert group["group"]["id"] == group_id
    assert added >= 3, "the README adds a few members"
    assert f"{group_id}: {1 + added} members" in seen["check"]  # the chair and those added
    assert "config OK" in seen["check"]
    meetings = [m["id"] for m in group["meeting"]]
    assert len(meetings) == 4
    for meeting in meetings:
        assert f"{group_id}/{meeting}" in seen["plan"], f"the plan does not show {meeting}"
    assert "qa-leads" not in seen["plan"]  # the example group stays apart
    assert "clerk worker stopped" in seen["run"]


def _run_briefly(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> str:
    """Start the worker, wait for its first tick, stop it as Ctrl-C does: its log."""
    with log.open("w") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 60
            while "planned " not in log.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return log.read_text()


# ---------------------------------------------------------------------------------------
# contrib/clerk.service

def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


def test_the_systemd_unit_runs_the_worker_as_its_own_user():
    unit = _unit()
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    service = unit["Service"]
    exec_start = shlex.split(service["ExecStart"])
    assert Path(exec_start[0]).is_absolute() and Path(exec_start[0]).name == "clerk"
    assert exec_start[1:] == ["run"]
    assert service["Restart"] == "on-failure"
    assert service.get("User") not in (None, "", "root")
    assert service.get("WorkingDirectory", "").startswith("/")
    assert "CLERK_CONFIG=" in UNIT.read_text() and "CLERK_STATE=" in UNIT.read_text()
    assert service.get("NoNewPrivileges") == "yes" and service.get("ProtectSystem") == "strict"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# What `systemd-analyze verify` may say of a unit for another machine: the program is not
# installed here. Anything else is a mistake in the unit.
ELSEWHERE = re.compile(r"^clerk\.service: Command \S+ is not executable: No such file or "
                       r"directory$")


def test_the_systemd_unit_verifies():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on PATH")
    done = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True,
                          timeout=120)
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    wrong = [line for line in said if not ELSEWHERE.match(line)]
    assert wrong == [], "\n".join(said)
    assert done.returncode == 0 or said, done


def _option_tables() -> list[tuple[str, dict[str, object]]]:
    """Every table of options a user may write, with where it is written: clerk.toml's
    [clerk], each transport's and mailbox's [transport]/[mailbox], group.toml's sections."""
    from bot import transports
    from bot.config import group, meetings, settings
    from bot.listen import authn

    found: list[tuple[str, dict[str, object]]] = [
        ("[clerk]", settings.SETTINGS_OPTIONS), ("[mailbox] (who sent a reply)", authn.OPTIONS),
        ("group.toml", group.GROUP_OPTIONS), ("[admin], [chair], [organiser]",
                                              group.PERSON_OPTIONS),
        ("[[rule]]", group.RULE_OPTIONS), ("[actions]", group.ACTIONS_OPTIONS),
        ("[desk]", group.DESK_OPTIONS), ("[meetings]", meetings.DEFAULTS_OPTIONS),
        ("[[meeting]]", meetings.MEETING_OPTIONS), ("[[series]]", meetings.SERIES_OPTIONS),
        ("[[series.occurrence]]", meetings.OCCURRENCE_OPTIONS)]
    for section, registry in (("transport", transports.REGISTRY),
                              ("mailbox", transports.MAILBOXES)):
        for name in registry:
            declared = transports.options(name, registry) or {}
            found.append((f"[{section}] of {name}", dict(declared)))
    return found


@pytest.mark.parametrize(("table", "options"), _option_tables(), ids=lambda v: str(v)[:40])
def test_every_config_option_is_documented(table: str, options: dict[str, object]):
    """The config is a contract: every key clerk reads is in docs/configuration.md or
    docs/transports.md — as `key`, in an example (`key = …`, "or key" in its comment) or as a
    table of its own (`[[series.occurrence]]`)."""
    docs = (DOCS / "configuration.md").read_text() + (DOCS / "transports.md").read_text()
    missing = [key for key in options
               if f"`{key}`" not in docs and f".{key}]]" not in docs
               and not re.search(rf"^\s*#?\s*{re.escape(key)}\s*=|\bor {re.escape(key)}\b",
                                 docs, re.MULTILINE)]
    assert not missing, f"{table}: not in docs/configuration.md nor docs/transports.md: " \
                        f"{', '.join(missing)}"
