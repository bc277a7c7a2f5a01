"""Writing a MIME message straight to bytes (RFC 5322, 2045–2047, 2231), CRLF throughout.

clerk's messages have a fixed shape (bot/render/email.py), so they are written directly: the
``email`` package parses and refolds every header it is given, which made building and
flattening a message cost ten times the rest of sending it. What is plain — ASCII values that
fit on a line — is written as it is; anything else (a non-ASCII name or subject, a header too
long for a line) is folded and encoded by the ``email`` package's own header classes, so the
awkward cases are handled exactly as before. Bodies are 7bit when they are ASCII with short
lines, else quoted-printable (text) or base64 (a large share of non-ASCII, and files): the
message is 7-bit clean and passes any relay.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Sequence
from email.utils import encode_rfc2231, formataddr
from typing import Any

CRLF = b"\r\n"
MAX_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters
_ASCII = bytes(range(128))  # deleted by translate(): what is left is the non-ASCII bytes


def _needs_quoting(value: str) -> bool:
    return any(c in value for c in '"\\') or not value.isascii() or not value.isprintable()


def header(name: str, value: object) -> bytes:
    """One header field, folded: ``value`` is a string, or what the ``email`` package's
    header classes accept (an Address, a list of them)."""
    if isinstance(value, str) and (len(value.splitlines()) > 1 or any(c in value for c in
                                                                       "\r\n\x00")):
        raise ValueError(f"a {name} header may not contain a line break: {value!r}")
    if isinstance(value, str) and value.isascii() and value.isprintable():
        if len(name) + 2 + len(value) <= MAX_LINE:
            return f"{name}: {value}\r\n".encode("ascii")
        if name.lower() == "subject" and " " in value[:MAX_LINE - len(name) - 2]:
            # folded before blanks, never right after the colon: the email package may put
            # the whole value on the next line, and a reader then sees a leading blank
            return _wrap(f"{name}: {value}")
    from email.policy import SMTP

    parsed = SMTP.header_factory(name, value)
    folded: str = parsed.fold(policy=SMTP)
    if hasattr(parsed, "addresses") and _people(parsed) != _people(
            SMTP.header_factory(name, folded.partition(":")[2].replace("\r\n", ""))):
        # the email package can drop the quotes of a display name longer than a line (CPython
        # gh-80222, as in 3.11.7): "Smith, Eve <eve@evil.example>, Jo" read as three people
        if not (isinstance(value, str) and value.isascii() and value.isprintable()):
            raise ValueError(f"a {name} header cannot be folded safely: {value!r}")
        return _wrap(f"{name}: {value}")
    return folded.encode("ascii")


def _wrap(line: str) -> bytes:
    """``line`` folded before blanks (unfolding restores it exactly, RFC 5322 2.2.3), each
    part at most MAX_LINE long where a blank allows it, none blank only."""
    parts, start = [], 0
    while len(line) - start > MAX_LINE:
        cut = next((i for i in range(start + MAX_LINE, start, -1)
                    if line[i] == " " and line[start:i].strip()), None)
        if cut is None:  # a word longer than a line: break at the first blank after it
            cut = next((i for i in range(start + MAX_LINE, len(line)) if line[i] == " "
                        and line[start:i].strip()), None)
            if cut is None:
                break
        parts.append(line[start:cut])
        start = cut
    parts.append(line[start:])
    if max(map(len, parts)) > 998:
        raise ValueError(f"a header line longer than 998 octets: {line[:40]!r}…")
    return ("\r\n".join(parts) + "\r\n").encode("ascii")


def _people(field: Any) -> list[tuple[str, str]]:
    """Who an address field names (a display name's blanks aside: CPython gh-128110)."""
    return [("".join(a.display_name.split()), a.addr_spec) for a in field.addresses]


def address(name: str, email: str) -> str | None:
    """``Name <email>`` when both are plain ASCII, else None (the email package encodes it)."""
    if not (name.isascii() and name.isprintable() and email.isascii()):
        return None
    return formataddr((name, email))


def param(name: str, value: str) -> str:
    """A MIME parameter: quoted, or RFC 2231 encoded when it is not plain ASCII."""
    if _needs_quoting(value):
        return f"{name}*={encode_rfc2231(value, 'utf-8')}"
    return f'{name}="{value}"'


def _fields(*fields: str) -> bytes:
    """A structured header whose parameters go to continuation lines when it is long."""
    line = "; ".join(fields)
    if len(line) > MAX_LINE:
        line = ";\r\n ".join(fields)
    return line.encode("ascii") + CRLF


def text_part(text: str, subtype: str, params: Sequence[str] = ()) -> bytes:
    """A text/* part in UTF-8: 7bit when it can be, else quoted-printable or base64."""
    lines = text.encode("utf-8").splitlines()  # CR, LF and CRLF only, as the email package
    data = b"\n".join(lines) + b"\n"
    if data.isascii() and max(map(len, lines), default=0) <= MAX_LINE:
        cte, body = "7bit", data.replace(b"\n", CRLF)
    elif len(data.translate(None, _ASCII)) * 3 > len(data):  # mostly non-Latin: base64 is shorter
        # RFC 2045 6.8, RFC 2046 4.1.1: text is encoded in canonical form, lines end in CRLF
        cte, body = "base64", _base64(data.replace(b"\n", CRLF))
    else:
        cte, body = "quoted-printable", binascii.b2a_qp(data, istext=True).replace(b"\n",
                                                                                     CRLF)
    head = b"Content-Type: " + _fields(f"text/{subtype}", 'charset="utf-8"', *params)
    return head + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode("ascii") + body


def _base64(data: bytes) -> bytes:
    """Base64 in lines of 76 characters (RFC 2045 6.8), each ending in CRLF."""
    encoded = binascii.b2a_base64(data, newline=False)
    return CRLF.join(encoded[i:i + 76] for i in range(0, len(encoded), 76)) + CRLF


@functools.lru_cache(maxsize=16)
def _base64_kept(data: bytes) -> bytes:
    return _base64(data)


KEEP_ENCODED = 256 << 10  # an attachment this size or smaller is encoded once for a pack


def file_part(data: bytes, mime: str, filename: str) -> bytes:
    """An attachment: base64, named in Content-Disposition. A meeting's pack goes to every
    member with the same agenda and papers: the last 16 of :data:`KEEP_ENCODED` bytes or
    fewer are kept, with their encoding (10 MB at most)."""
    return (b"Content-Type: " + mime.encode("ascii") + CRLF
            + b"Content-Transfer-Encoding: base64\r\n"
            # a long name goes to RFC 2231 continuations (by the email package, as before)
            + header("Content-Disposition", f"attachment; {param('filename', filename)}")
            + CRLF + (_base64_kept if len(data) <= KEEP_ENCODED else _base64)(data))


def multipart(subtype: str, parts: Sequence[bytes], seed: str) -> bytes:
    """A multipart/* entity of ``parts``; its boundary is derived from ``seed`` (the same
    message always reads the same) and never occurs in a part."""
    n = 0
    while True:
        boundary = f"=_clerk.{seed}.{subtype[0]}{n}".encode("ascii")
        if not any(boundary in p for p in parts):
            break
        n += 1
    out = [b"Content-Type: multipart/" + subtype.encode("ascii") + b'; boundary="' + boundary
           + b'"\r\n\r\n']
    for p in parts:
        out += [b"--", boundary, CRLF, p, CRLF]
    out += [b"--", boundary, b"--", CRLF]
    return b"".join(out)
