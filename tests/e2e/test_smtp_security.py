"""The smtp transport's security: certificates verified by default, STARTTLS and implicit TLS,
AUTH from the environment or a secret file, and no credential in config or logs."""

from __future__ import annotations

import logging
import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import Result

from bot import config as config_mod
from bot import transports
from bot.engine.executor import Executor
from bot.engine.store import Store
from tests.mail import free_port

pytestmark = pytest.mark.slow
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
PASSWORD = "s3cret-pass-phrase"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


class Sink:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append((data.login.decode(), data.password.decode()))
            ok = data.password.decode() == PASSWORD
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)


@pytest.fixture(params=["starttls", "tls"])
def server(request: pytest.FixtureRequest,
           certificate: tuple[Path, Path]) -> Iterator[tuple[str, int, Sink]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    sink = Sink()
    port = free_port()
    kwargs: dict[str, Any] = {"tls_context": context, "require_starttls": True} \
        if request.param == "starttls" else {"ssl_context": context}
    controller = Controller(sink, hostname="127.0.0.1", port=port, authenticator=sink.authenticate,
                            # implicit TLS is not seen as TLS by aiosmtpd's check
                            auth_require_tls=request.param == "starttls",
                            server_hostname="127.0.0.1", **kwargs)
    controller.start()
    yield request.param, port, sink
    controller.stop()


def executor(config_dir: Path, store: Store, security: str, port: int,
             extra: str = "") -> Executor:
    (config_dir / "clerk.toml").write_text(
        f'[clerk]\ntransport = "smtp"\n\n[transport]\nhost = "127.0.0.1"\nport = {port}\n'
        f'security = "{security}"\ntimeout = 10\n{extra}')
    config = config_mod.load(config_dir)
    s = config.settings
    return Executor(config, store, transports.load(s.transport, s.transport_options))


def test_an_untrusted_certificate_is_refused_by_default(
        config_dir: Path, store: Store, server: tuple[str, int, Sink]):
    security, port, sink = server
    result = executor(config_dir, store, security, port).tick(T0)
    assert result.sent == [] and len(result.retry) == 21 and sink.messages == []
    row = store.row(result.retry[0])
    assert "not trusted" in row.last_error or "CERTIFICATE_VERIFY_FAILED" in row.last_error


def test_a_trusted_ca_and_credentials_from_the_environment(
        config_dir: Path, store: Store, server: tuple[str, int, Sink],
        certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture):
    security, port, sink = server
    monkeypatch.setenv("CLERK_SMTP_USERNAME", "clerk")
    monkeypatch.setenv("CLERK_SMTP_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    result = executor(config_dir, store, security, port,
                      f'cafile = "{certificate[0]}"\n').tick(T0)
    assert len(result.sent) == 21 and len(sink.messages) == 21
    assert sink.logins == [("clerk", PASSWORD)]  # one login: one connection for the batch
    assert PASSWORD not in caplog.text


def test_credentials_from_a_secret_file_and_a_wrong_password_is_retried(
        config_dir: Path, store: Store, server: tuple[str, int, Sink],
        certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    security, port, sink = server
    secret = tmp_path / "smtp-password"
    secret.write_text("wrong\n")
    monkeypatch.setenv("CLERK_SMTP_USERNAME", "clerk")
    ex = executor(config_dir, store, security, port,
                  f'cafile = "{certificate[0]}"\npassword_file = "{secret}"\n')
    result = ex.tick(T0)
    assert result.sent == [] and len(result.retry) == 21
    assert "authentication failed" in store.row(result.retry[0]).last_error
    # one login for the batch, not one per message (a wrong password tried 21 times can lock
    # the account); smtplib's login() tries the PLAIN and LOGIN mechanisms in turn
    assert set(sink.logins) == {("clerk", "wrong")} and len(sink.logins) <= 2


def test_a_password_in_the_config_file_is_refused(clerk: Callable[..., Result],
                                                  config_dir: Path):
    (config_dir / "clerk.toml").write_text(
        '[clerk]\ntransport = "smtp"\n\n[transport]\nhost = "smtp.example.org"\n'
        'password = "hunter2"\n')
    result = clerk("check")
    assert result.exit_code == 2
    assert "clerk.toml:6: transport.password: a credential in a config file" in result.output
    assert "hunter2" not in result.output


def test_plain_text_to_a_remote_server_is_refused(config_dir: Path, store: Store):
    from bot.domain.errors import TransportError

    (config_dir / "clerk.toml").write_text(
        '[clerk]\ntransport = "smtp"\n\n[transport]\nhost = "smtp.example.org"\n'
        'security = "none"\n')
    config = config_mod.load(config_dir)
    with pytest.raises(TransportError, match="plain text is allowed on loopback only"):
        transports.load("smtp", config.settings.transport_options)
