"""`clerk doctor`: each check of the state store, the chosen transport and mailbox, and what
to fix."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.engine.migrations import MIGRATIONS


def settings(config_dir: Path, text: str) -> None:
    (config_dir / "clerk.toml").write_text(text, encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_outbox_is_checked_writable(clerk: Callable[..., Any], config_dir: Path,
                                        tmp_path: Path):
    settings(config_dir, f'[transport]\npath = "{tmp_path / "out"}"\n')
    result = clerk("doctor", "--json")
    assert result.exit_code == 0
    [check] = [c for c in json.loads(result.output) if c["part"] != "store"]
    assert check["part"] == "transport" and check["ok"] and check["fix"] == ""
    assert (tmp_path / "out" / "new").is_dir()


def test_an_unreachable_smtp_server_fails_and_says_so(clerk: Callable[..., Any],
                                                      config_dir: Path):
    port = free_port()
    settings(config_dir, f'[clerk]\ntransport = "smtp"\n[transport]\nhost = "127.0.0.1"\n'
             f'port = {port}\nsecurity = "none"\ntimeout = 2\n')
    result = clerk("doctor")
    assert result.exit_code == 1
    assert "\nFAIL transport: smtp 127.0.0.1" in result.output
    assert f"fix: cannot reach 127.0.0.1:{port}" in result.output


def test_graph_settings_missing_are_named(clerk: Callable[..., Any], config_dir: Path):
    settings(config_dir, '[clerk]\ntransport = "graph"\nmailbox = "graph"\n[transport]\n'
             'mailbox = "clerk@contoso.example"\ntenant_id = "t"\n')
    result = clerk("doctor", "--json")
    assert result.exit_code == 1
    checks = json.loads(result.output)
    assert {"part": "transport", "ok": False, "check": "[transport] client_id",
            "fix": "set client_id in clerk.toml"} in checks
    assert {c["part"] for c in checks} == {"store", "transport", "mailbox"}


def test_a_graph_mailbox_without_the_graph_transport_is_a_config_error(
        clerk: Callable[..., Any], config_dir: Path):
    settings(config_dir, '[clerk]\nmailbox = "graph"\n')
    result = clerk("check")
    assert result.exit_code == 2
    assert "clerk.toml" in result.output and "mailbox 'graph' needs a [mailbox] section" \
        in result.output


def test_the_store_is_reached_its_schema_read_and_a_write_tried(
        clerk: Callable[..., Any], tmp_path: Path):
    assert clerk("status").exit_code == 0  # a store up to date
    result = clerk("doctor", "--json")
    assert result.exit_code == 0, result.output
    store = [c for c in json.loads(result.output) if c["part"] == "store"]
    assert [c["ok"] for c in store] == [True, True, True]
    assert store[0]["check"].startswith(
        f"reach sqlite:///{tmp_path / 'state.sqlite'} (SQLite 3.")
    assert store[1]["check"] == "schema up to date"
    assert store[2]["check"] == "write (within lock_timeout, 10 s)"
    assert clerk("doctor").output.startswith("ok  store: reach sqlite:///")


def test_a_read_only_store_fails_the_write_check(clerk: Callable[..., Any], tmp_path: Path):
    assert clerk("status").exit_code == 0
    result = clerk("--state", f"sqlite:///file:{tmp_path / 'state.sqlite'}?mode=ro&uri=true",
                   "doctor", "--json")
    assert result.exit_code == 1
    *_, write = [c for c in json.loads(result.output) if c["part"] == "store"]
    assert write["check"].startswith("write") and not write["ok"]
    assert "is read-only" in write["fix"]


def test_an_unreachable_store_and_a_new_one_are_told(clerk: Callable[..., Any],
                                                     tmp_path: Path):
    url = f"postgresql+psycopg://clerk@127.0.0.1:{free_port()}/clerk"
    result = clerk("--state", url, "doctor", "--json")
    assert result.exit_code == 1
    [store] = [c for c in json.loads(result.output) if c["part"] == "store"]
    assert store["check"] == f"reach {url}" and "cannot be reached" in store["fix"]
    result = clerk("--state", f"sqlite:///{tmp_path / 'new.sqlite'}", "doctor", "--json")
    assert result.exit_code == 0
    schema = [c for c in json.loads(result.output) if c["part"] == "store"][1]
    assert schema["ok"] and schema["check"].startswith(
        f"schema: {len(MIGRATIONS)} migration(s) to apply")


def test_a_store_a_newer_clerk_migrated_fails_the_schema_check(
        clerk: Callable[..., Any], tmp_path: Path):
    import sqlite3

    assert clerk("status").exit_code == 0
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        db.execute("INSERT INTO migrations (name, applied_at) VALUES ('0099_future', '')")
    result = clerk("doctor", "--json")
    assert result.exit_code == 1
    schema = [c for c in json.loads(result.output) if c["part"] == "store"][1]
    assert not schema["ok"] and "0099_future" in schema["fix"]


def test_on_postgresql_this_hosts_clock_is_compared_with_the_servers(
        clerk: Callable[..., Any], monkeypatch: Any):
    import time

    import pytest

    from bot.engine import failures
    from tests.conftest import PG_URL

    if not PG_URL:
        pytest.skip("CLERK_TEST_PG_URL is not set (make test sets it)")
    result = clerk("--state", PG_URL, "doctor", "--json")
    store = [c for c in json.loads(result.output) if c["part"] == "store"]
    assert [c["check"].split()[0] for c in store] == ["reach", "clock:", "schema", "write"]
    assert store[0]["check"].startswith("reach postgresql+psycopg://clerk_test:***@")
    assert "PostgreSQL" in store[0]["check"] and store[1]["ok"]
    real = time.time
    monkeypatch.setattr(failures.time, "time", lambda: real() + 60)
    clock = [c for c in json.loads(clerk("--state", PG_URL, "doctor", "--json").output)
             if c["part"] == "store"][1]
    assert not clock["ok"] and clock["check"].startswith("clock: 60.")
    assert "ahead of the database's" in clock["check"] and "chrony" in clock["fix"]
