"""Parsing and walking a MIME tree safely: the parse refused past a number of parts, its leaf
parts, their names and text, and clean header values (RFC 2047 decoded, without CR, LF or
other controls), for bot/listen/replies.py and bot/listen/answers.py.

A message of ten thousand parts costs Python's parser seconds and memory before anything
can look at it, so the parts are limited twice before and while parsing: :func:`count_parts`
counts the delimiter lines of the boundaries the raw bytes declare (one regular-expression
pass, no parse), and :func:`parse` makes the parser stop at the first part past the limit
(its message factory refuses to make more), whatever the count missed (a boundary in
RFC 2231 form, say). :func:`leaf_parts` stops after a number of parts too, for a message
parsed elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

MAX_PARTS = 100  # the default of ``[clerk] max_parts``
WALK = 1000  # the most parts a walk visits: max_parts can be no more


class Unusable(Exception):
    """What is wrong with the message; :func:`read` returns it as ``unusable``."""


_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))',
                       re.IGNORECASE)
_DELIMITER = re.compile(rb"\n--([^\r\n]{1,210})")  # a literal start: fast to look for


def _boundaries(raw: bytes) -> set[bytes]:
    """The boundary parameters in ``raw``, found by a plain search for the word (in lower or
    upper case: a mixed one is left to :func:`parse`'s own count)."""
    found: set[bytes] = set()
    for word in (b"oundary", b"OUNDARY"):
        at = raw.find(word, 1)
        while at > 0:
            if (m := _BOUNDARY.match(raw, at - 1)) and (b := (m[1] or m[2]).rstrip()):
                found.add(b)
            at = raw.find(word, at + 1)
    return found


def count_parts(raw: bytes) -> int:
    """How many MIME parts ``raw`` holds, from its bytes alone: the message itself and one
    per delimiter line (RFC 2046 section 5.1.1) of a boundary it declares."""
    boundaries = _boundaries(raw)
    if not boundaries:
        return 1
    found = 1
    for m in _DELIMITER.finditer(raw):
        if m[1].rstrip(b" \t") in boundaries:  # "--b--", the close delimiter, is no part
            found += 1
    return found


def parse(raw: bytes, max_parts: int = MAX_PARTS) -> EmailMessage:
    """``raw`` parsed (``policy.default``); :class:`Unusable` when it holds more than
    ``max_parts`` MIME parts, said before parsing when its bytes show it, else as soon as
    the parser makes one part too many."""
    counted = count_parts(raw)
    if counted > max_parts:
        raise Unusable(f"{counted} MIME parts, more than max_parts ({max_parts}): not read")
    made = -1  # FeedParser calls the factory once to try it

    def factory(**kwargs: Any) -> EmailMessage:
        nonlocal made
        made += 1
        if made > max_parts:
            raise Unusable(f"more than max_parts ({max_parts}) MIME parts: not read "
                           f"(stopped at part {made})")
        return EmailMessage(**kwargs)

    parsed: EmailMessage = BytesParser(factory, policy=policy.default).parsebytes(raw)
    return parsed


def header_text(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: its raw text
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return "" if value is None else str(value)


def leaf_parts(msg: Message, most: int = WALK) -> Iterator[Message]:
    """The leaf parts in order; an attached message (message/*) is a leaf, not opened. The
    walk stops after ``most`` parts (leaves and containers), and 30 levels down."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    visited = 0
    while stack and visited < most:
        part, depth = stack.pop()
        visited += 1
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            subs = part.get_payload() if depth < 30 else []
            if isinstance(subs, list):
                stack += [(s, depth + 1) for s in reversed(subs) if isinstance(s, Message)]
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

