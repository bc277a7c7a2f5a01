"""`clerk doctor`: each check of the chosen transport and mailbox, and what to fix."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
    [check] = json.loads(result.output)
    assert check["part"] == "transport" and check["ok"] and check["fix"] == ""
    assert (tmp_path / "out" / "new").is_dir()


def test_an_unreachable_smtp_server_fails_and_says_so(clerk: Callable[..., Any],
                                                      config_dir: Path):
    port = free_port()
    settings(config_dir, f'[clerk]\ntransport = "smtp"\n[transport]\nhost = "127.0.0.1"\n'
             f'port = {port}\nsecurity = "none"\ntimeout = 2\n')
    result = clerk("doctor")
    assert result.exit_code == 1
    assert result.output.startswith("FAIL transport: smtp 127.0.0.1")
    assert f"fix: cannot reach 127.0.0.1:{port}" in result.output


def test_graph_settings_missing_are_named(clerk: Callable[..., Any], config_dir: Path):
    settings(config_dir, '[clerk]\ntransport = "graph"\nmailbox = "graph"\n[transport]\n'
             'mailbox = "clerk@contoso.example"\ntenant_id = "t"\n')
    result = clerk("doctor", "--json")
    assert result.exit_code == 1
    checks = json.loads(result.output)
    assert {"part": "transport", "ok": False, "check": "[transport] client_id",
            "fix": "set client_id in clerk.toml"} in checks
    assert {c["part"] for c in checks} == {"transport", "mailbox"}


def test_a_graph_mailbox_without_the_graph_transport_is_a_config_error(
        clerk: Callable[..., Any], config_dir: Path):
    settings(config_dir, '[clerk]\nmailbox = "graph"\n')
    result = clerk("check")
    assert result.exit_code == 2
    assert "clerk.toml" in result.output and "mailbox 'graph' needs a [mailbox] section" \
        in result.output
