"""Fixtures for the end-to-end tests: a real Radicale (tests/parsers.py), and real Postfix and
Dovecot plus a fault-injecting aiosmtpd (tests/mail.py), all on loopback."""

from tests.mail import fault_smtp, mailboxes, mailservers  # noqa: F401  (pytest fixtures)
from tests.parsers import radicale, radicale_put  # noqa: F401  (pytest fixtures)
