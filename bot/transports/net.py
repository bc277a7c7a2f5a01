"""What every network transport and mailbox shares: where the server is, how the connection
is secured, and where the credentials come from (never config files:
bot/transports/credentials.py)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from bot.domain.errors import TransportError
from bot.domain.options import Option, _bool, _choice, _float, _int, _str

LOOPBACK = ("localhost", "127.0.0.1", "::1")


def connection_options(what: str, env: str, securities: tuple[str, ...],
                       ports: str) -> dict[str, Option]:
    """The declarations of a server connection: ``what`` names the server, ``env`` the
    prefix of the credential variables, ``securities`` the choices (the first is the
    default), ``ports`` the help on default ports."""
    return {
        "host": Option("localhost", _str, f"the {what} server"),
        "port": Option(0, _int, f"its port; 0: {ports}"),
        "security": Option(securities[0], _choice(*securities),
                           f"{', '.join(securities)} (none: loopback only)"),
        "verify": Option(True, _bool, "verify the server's certificate (keep it on)"),
        "cafile": Option("", _str, "a CA bundle for a private certificate authority"),
        "timeout": Option(30.0, _float, "seconds to wait for the server"),
        "username_env": Option(f"{env}_USERNAME", _str, "variable holding the user name"),
        "username_file": Option("", _str, "file holding the user name"),
        "password_env": Option(f"{env}_PASSWORD", _str, "variable holding the password"),
        "password_file": Option("", _str, "file holding the password"),
    }


def endpoint(options: Mapping[str, Any], what: str, default_security: str,
             ports: Mapping[str, int]) -> tuple[str, int, str]:
    """(host, port, security) from the options; plain text only to a loopback address."""
    host = options.get("host", "localhost")
    security = options.get("security", default_security)
    port = int(options.get("port") or ports[security])
    if security == "none" and host not in LOOPBACK:
        raise TransportError(f"refusing plain {what} to {host}: secure the connection "
                             "(plain text is allowed on loopback only)", retryable=False)
    return host, port, security


def tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("cafile") or None)
    if not options.get("verify", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
