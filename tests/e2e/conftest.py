"""Fixtures for the end-to-end tests: a real Radicale on loopback (see tests/parsers.py)."""

from tests.parsers import radicale, radicale_put  # noqa: F401  (pytest fixtures)
