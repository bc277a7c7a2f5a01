"""Walking a MIME tree safely: its leaf parts, their names and text, and clean header values
(RFC 2047 decoded, without CR, LF or other controls), for bot/listen/replies.py and
bot/listen/answers.py."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message


class Unusable(Exception):
    """What is wrong with the message; :func:`read` returns it as ``unusable``."""


def header_text(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: its raw text
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return "" if value is None else str(value)


def leaf_parts(part: Message, depth: int = 0) -> Iterator[Message]:
    """The leaf parts in order; an attached message (message/*) is a leaf, not opened."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.get_payload() if depth < 30 else ():
            if isinstance(sub, Message):
                yield from leaf_parts(sub, depth + 1)
    else:
        yield part


def part_filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:
        return None


def part_text(part: Message, limit: int = 1_000_000) -> str:
    data = part.get_payload(decode=True)
    data = data[:limit] if isinstance(data, bytes) else b""
    try:
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError):  # an unknown, non-text or hostile charset name
        return data.decode("utf-8", "replace")

