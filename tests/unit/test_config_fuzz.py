"""Every key of clerk.toml, group.toml and the roster, written with a value of every TOML type
or random text, gives a config or problems naming the file, the line and the key — never a
traceback — in `clerk check` and in a running worker alike."""

from __future__ import annotations

import csv
import io
import shutil
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import config as config_mod
from bot import transports
from bot.config.group import (
    ACTIONS_OPTIONS,
    DESK_OPTIONS,
    GROUP_OPTIONS,
    PERSON_OPTIONS,
    RULE_OPTIONS,
)
from bot.config.meetings import DEFAULTS_OPTIONS, MEETING_OPTIONS
from bot.config.settings import SETTINGS_OPTIONS
from bot.domain.errors import ConfigError
from bot.listen import authn
from bot.transports import exchange, graph, imap, maildir, outbox, smtp
from tests.conftest import EXAMPLE

TEXT = st.text(max_size=40)
SCALARS = st.one_of(TEXT, st.integers(-(2**40), 2**40),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.dates(), st.datetimes(), st.times(),
                    st.sampled_from(["", "0", "-1", "2h", "-28d", "Mon-Fri 8-18", "20%",
                                     "Europe/Nowhere", "imap", "x@y", "2027-02-30",
                                     "\x00\r\n", "é" * 300]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), SCALARS,
                                   max_size=2))

# (file, table, index of an array of tables or None, key) for every declared key
GROUP_KEYS = ([("group", None, k) for k in GROUP_OPTIONS]
              + [(t, None, k) for t in ("organiser", "admin") for k in PERSON_OPTIONS]
              + [("meetings", None, k) for k in DEFAULTS_OPTIONS]
              + [("meeting", 0, k) for k in MEETING_OPTIONS]
              + [("rule", 1, k) for k in RULE_OPTIONS]
              + [("actions", None, k) for k in ACTIONS_OPTIONS]
              + [("desk", None, k) for k in DESK_OPTIONS])
SETTINGS_KEYS = ([("clerk", None, k) for k in SETTINGS_OPTIONS]
                 + [("transport", None, k) for k in smtp.OPTIONS]
                 + [("mailbox", None, k) for k in {**imap.OPTIONS, **authn.OPTIONS}])
SETTINGS = {"clerk": {"transport": "smtp", "mailbox": "imap"},
            "transport": {"host": "smtp.example"},
            "mailbox": {"host": "imap.example", "authserv_id": "mx.example"}}
# every other transport and mailbox, each with a clerk.toml that loads as it stands
EWS = {"server": "mail.example", "mailbox": "clerk@example.org"}
M365 = {"mailbox": "clerk@example.org", "tenant_id": "t", "client_id": "c"}
TRANSPORTS = {"outbox": ({}, outbox.OPTIONS), "exchange": (EWS, exchange.OPTIONS),
              "graph": (M365, graph.OPTIONS)}
MAILBOXES = {"maildir": ({"path": "inbox"}, maildir.OPTIONS),
             "exchange": (EWS, exchange.OPTIONS), "graph": (M365, graph.OPTIONS)}
OTHER_KEYS = ([("transport", name, k) for name, (_, o) in TRANSPORTS.items() for k in o]
              + [("mailbox", name, k) for name, (_, o) in MAILBOXES.items()
                 for k in {**o, **authn.OPTIONS}])


def _write(folder: Path, data: dict[str, Any], name: str) -> None:
    (folder / name).write_text(tomli_w.dumps(data), encoding="utf-8")


def _set(data: dict[str, Any], table: str, index: int | None, key: str, value: Any) -> None:
    where = data.setdefault(table, [{}] if index is not None else {})
    (where[index] if index is not None else where)[key] = value


def _checked(folder: Path, file: str, key: str) -> None:
    """Loading gives a config, or problems that each name a file, a line and a key (the
    one written, or one it broke: a rule renamed, and a chaser now chases nothing)."""
    try:
        config_mod.load(folder)
    except ConfigError as exc:
        assert exc.problems, exc
        shown = [str(p) for p in exc.problems]
        assert all(p.key and p.line for p in exc.problems if p.where.endswith(file)), shown
        assert any(p.where.endswith(file) for p in exc.problems), shown


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return tomllib.loads((EXAMPLE / "group.toml").read_text(encoding="utf-8"))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(GROUP_KEYS), value=VALUES)
def test_any_value_of_any_group_key(tmp_path_factory: pytest.TempPathFactory,
                                    example: dict[str, Any], target: tuple[str, int | None, str],
                                    value: Any):
    folder = tmp_path_factory.mktemp("config")
    shutil.copytree(EXAMPLE, folder / "g")
    data = tomllib.loads(tomli_w.dumps(example))
    table, index, key = target
    _set(data, table, index, key, value)
    _write(folder / "g", data, "group.toml")
    _checked(folder, "group.toml", f"{table}[{index}].{key}" if index is not None
             else f"{table}.{key}")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(SETTINGS_KEYS), value=VALUES)
def test_any_value_of_any_settings_key(tmp_path_factory: pytest.TempPathFactory,
                                       target: tuple[str, int | None, str], value: Any):
    folder = tmp_path_factory.mktemp("config")
    shutil.copytree(EXAMPLE, folder / "g")
    data = tomllib.loads(tomli_w.dumps(SETTINGS))
    table, index, key = target
    _set(data, table, index, key, value)
    _write(folder, data, "clerk.toml")
    _checked(folder, "clerk.toml", f"{table}.{key}")


def test_every_transport_and_mailbox_is_fuzzed():
    """Each one clerk offers is in the fuzz below (or, smtp and imap, in the one above),
    with every option its module declares."""
    assert set(TRANSPORTS) | {"smtp", "memory"} == set(transports.REGISTRY)
    assert set(MAILBOXES) | {"imap"} == set(transports.MAILBOXES)
    for section, registry, table in (("transport", transports.REGISTRY, TRANSPORTS),
                                     ("mailbox", transports.MAILBOXES, MAILBOXES)):
        for name, (_, declared) in table.items():
            assert declared == transports.options(name, registry), (section, name)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(OTHER_KEYS), value=VALUES)
def test_any_value_of_any_key_of_every_transport_and_mailbox(
        tmp_path_factory: pytest.TempPathFactory, target: tuple[str, str, str], value: Any):
    """outbox, exchange and graph sending; maildir, exchange and graph reading: each of
    their keys with any value is a config or problems naming clerk.toml, the line and the
    key; and a config that loads makes a transport and a mailbox without a traceback."""
    folder = tmp_path_factory.mktemp("config")
    shutil.copytree(EXAMPLE, folder / "g")
    section, name, key = target
    if section == "transport":
        base, _ = TRANSPORTS[name]
        data: dict[str, Any] = {"clerk": {"transport": name}, "transport": dict(base)}
    else:
        base, _ = MAILBOXES[name]
        data = {"clerk": {"transport": "outbox", "mailbox": name},
                "mailbox": {**base, "authserv_id": "mx.example"}}
    data[section][key] = value
    _write(folder, tomllib.loads(tomli_w.dumps(data)), "clerk.toml")
    try:
        config = config_mod.load(folder)
    except ConfigError as exc:
        assert exc.problems, exc
        shown = [str(p) for p in exc.problems]
        assert all(p.where.endswith("clerk.toml") and p.key and p.line
                   for p in exc.problems), shown
        assert any(p.key == f"{section}.{key}" for p in exc.problems), shown
        return
    s = config.settings
    made = transports.load(s.transport, s.transport_options)
    assert made.describe()
    mailbox = transports.load_mailbox(s.mailbox, s.mailbox_options)
    assert (mailbox is not None) is bool(s.mailbox) and repr(mailbox)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(column=st.sampled_from(["name", "email", "organisation", "role"]), value=TEXT,
       row=st.integers(0, 20))
def test_any_text_in_any_roster_cell(tmp_path_factory: pytest.TempPathFactory, column: str,
                                     value: str, row: int):
    folder = tmp_path_factory.mktemp("config")
    shutil.copytree(EXAMPLE, folder / "g")
    path = folder / "g" / "roster.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    rows[row][column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["name", "email", "organisation", "role"])
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    try:
        config_mod.load(folder)
    except ConfigError as exc:
        assert all(p.where.endswith("roster.csv") and p.line for p in exc.problems
                   if "roster" in p.where), [str(p) for p in exc.problems]


def test_a_running_worker_keeps_its_last_good_config_through_a_broken_edit(
        make_executor: Callable[[], Any], config_dir: Path,
        caplog: pytest.LogCaptureFixture):
    from bot.engine.worker import Worker

    worker = Worker(make_executor(), config_dir)
    (config_dir / "clerk.toml").write_text('[clerk]\ninterval = "abc"\nstate = 5\n'
                                           'retry_base = -1\npark_after = "forever"\n'
                                           'mailbox = "imap"\n')
    worker.tick(datetime(2026, 12, 1, 10, tzinfo=UTC))
    assert worker.ticks == 1  # it ticked, on the config it had
    text = caplog.text
    assert "config has problems; still using the last good one" in text
    for key in ("clerk.interval", "clerk.state", "clerk.park_after", "mailbox.host"):
        assert key in text, key
    assert "Traceback" not in text


@pytest.mark.parametrize("settings_text,key", [
    ('[clerk]\ninterval = "abc"\n', "clerk.interval"),
    ("[clerk]\nstate = 5\n", "clerk.state"),
    ("[clerk]\nretry_base = -1\n", "clerk.retry_base"),
    ('[clerk]\npark_after = "forever"\n', "clerk.park_after"),
    ('[clerk]\nmailbox = "maildir"\n', "mailbox.path"),
    ('[clerk]\nmailbox = "imap"\n', "mailbox.host"),
])
def test_each_everyday_mistake_in_clerk_toml_is_named(config_dir: Path, settings_text: str,
                                                      key: str, clerk: Callable[..., Result]):
    (config_dir / "clerk.toml").write_text(settings_text)
    result = clerk("check")
    assert result.exit_code == 2 and key in result.output, result.output
    assert "clerk.toml:" in result.output and "Traceback" not in result.output
