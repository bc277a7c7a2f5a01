"""Human answers: the new text above the quoted original, the command on its first line, and
the attachments, with safe names and a size limit (used by bot/listen/replies.py).

The quote starts at an RFC 3676 section 4.3 signature line, "On ... wrote:", Outlook's
"-----Original Message-----" or its From:/Sent: block; a ">" line is quoted text. Commands:
``DONE``, ``NEW DATE <date>``, ``UPDATE <text>``, ``AGENDA: <item>`` start the first line;
"nil" anywhere in it is a nil return. Attachment names (RFC 2183, RFC 2231) become a safe base
name (RFC 6266 section 4.3); one over the size limit is sized from its base64 text, never
decoded, and those past the count limit (``max_attachments``) are not decoded either: each
comes back without data, with the reason in ``refused``. What an attachment *is* is decided
from its content when it is kept (bot/listen/papers.py), never from its name or type.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from email.message import Message
from html.parser import HTMLParser
from typing import Any, Literal

from bot.listen.mime import Unusable, header_text, leaf_parts, part_filename, part_text

Command = Literal["DONE", "NEW DATE", "UPDATE", "AGENDA", "NIL", "INVALID", "APPROVE"]

@dataclass(frozen=True)
class Attachment:
    filename: str  # a safe base name, or attachment-N
    content_type: str
    size: int  # in bytes (from the base64 length when too large)
    data: bytes | None  # None when too large, or past the count limit
    too_large: bool = False
    refused: str = ""  # why it has no data: too large, or one too many


@dataclass(frozen=True)
class Answer:
    """A human reply: its new text, and the command on its first line."""
    first_line: str
    text: str  # above the quoted original, without ">" lines
    command: Command | None = None
    date: date | None = None  # NEW DATE
    argument: str = ""  # UPDATE, AGENDA; the text of an INVALID NEW DATE
    reason: str = ""  # why the command is INVALID
    attachments: tuple[Attachment, ...] = ()
    ref: int | None = None  # "DONE #12": the action it names, when a chaser lists several



MAX_ATTACHMENTS = 10  # the default of ``[clerk] max_attachments``


def answer(msg: Message, limit: int, max_attachments: int = MAX_ATTACHMENTS) -> Answer:
    body = _body(msg)
    text = _new_text(body[0]) if body else ""
    files = tuple(_attachments(msg, limit, body[1] if body else None, max_attachments))
    if not text and not files:
        raise Unusable("empty body")
    lines = text.splitlines()  # the text is stripped: its first line is not blank
    first, rest = (lines[0].strip() if lines else ""), "\n".join(lines[1:]).strip()
    return Answer(first_line=first, text=text, attachments=files, **_command(first, rest))


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment" or part_filename(part):
        return True
    return part.get_content_maintype() not in ("text", "multipart") \
        and not header_text(part, "Content-ID")  # an inline image of a signature


def _body(msg: Message) -> tuple[str, Message] | None:
    """The text of the first text/plain part with any, else of the first text/html."""
    for subtype in ("plain", "html"):
        for part in leaf_parts(msg):
            if part.get_content_type() == f"text/{subtype}" and not _is_attachment(part):
                text = _html_text(part_text(part)) if subtype == "html" else part_text(part)
                if text.strip():
                    return text, part
    return None


class _HTMLText(HTMLParser):
    """The text of HTML: a line per block, and nothing of quotes, scripts or styles."""
    _SKIP = frozenset({"script", "style", "head", "title", "blockquote"})
    _BREAK = frozenset({"br", "p", "div", "tr", "li", "hr", "table", "blockquote",
                        "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skipping += tag in self._SKIP
        self.out.append("\n" if tag in self._BREAK else "")

    def handle_endtag(self, tag: str) -> None:
        self.skipping -= tag in self._SKIP and self.skipping > 0
        self.out.append("\n" if tag in self._BREAK else "")

    def handle_data(self, data: str) -> None:
        self.out.append("" if self.skipping else re.sub(r"\s+", " ", data))


def _html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.out)


_WROTE = re.compile(r"(on|am|le|el|il|op)\b.{0,300}\b(wrote|schrieb|a écrit|escribió"
                    r"|ha scritto|schreef)\s*:$", re.IGNORECASE)
_ORIGINAL = re.compile(r"(-{2,}\s*(original message|ursprüngliche nachricht|message d'origine"
                       r"|forwarded message)\s*-{2,}|_{10,})$", re.IGNORECASE)
_FROM = re.compile(r"\*?(from|von|de)\s*:", re.IGNORECASE)
_FIELD = re.compile(r"\*?(sent|date|to|subject|gesendet|an|betreff|envoyé|objet)\s*:",
                    re.IGNORECASE)


def _quote_starts(lines: list[str], i: int) -> bool:
    line, after = lines[i].strip(), [n.strip() for n in lines[i + 1:i + 6]]
    if lines[i] in ("-- ", "--") or _ORIGINAL.match(line) or _WROTE.match(line):
        return True
    if after and _WROTE.match(f"{line} {after[0]}"):  # "On ... <" / "clerk@...> wrote:"
        return True
    return bool(_FROM.match(line)) and any(_FIELD.match(n) for n in after)


def _new_text(body: str) -> str:
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = []
    for i, line in enumerate(lines):
        if _quote_starts(lines, i):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()


_COMMAND = re.compile(r"[\W_]*(done|new\s+date|update|agenda|approved?)\b[\s:;,.!\-–]*(.*)$",
                      re.I)


def _command(first: str, rest: str) -> dict[str, Any]:
    if (match := _COMMAND.match(first)) is None:
        return {"command": "NIL"} if re.search(r"\bnil\b", first, re.I) else {}
    word, argument = " ".join(match.group(1).upper().split()), match.group(2).strip()
    found: dict[str, Any] = {}
    if (ref := _REF.match(argument)) is not None:  # "DONE #12", "NEW DATE #12 2027-05-01"
        found["ref"], argument = int(ref.group(1)), argument[ref.end():].strip()
    return found | _verb(word, argument, rest)


_REF = re.compile(r"#(\d{1,9})\b[\s:;,.]*")


def _verb(word: str, argument: str, rest: str) -> dict[str, Any]:
    if word == "DONE":
        return {"command": "DONE"}
    if word in ("APPROVE", "APPROVED"):
        return {"command": "APPROVE"}
    if word == "NEW DATE":
        if (when := _date(argument)) is not None:
            return {"command": "NEW DATE", "date": when}
        return {"command": "INVALID", "argument": argument,
                "reason": f"NEW DATE needs a date such as 2027-05-01, not {argument!r}"}
    if argument := argument or rest:
        return {"command": word, "argument": argument}
    return {"command": "INVALID", "reason": f"{word} needs some text after it"}


def _date(text: str) -> date | None:
    """2027-05-01, 1 May 2027 or May 1, 2027 at the start of ``text``."""
    words = text.replace(",", " ").split()
    for candidate in (" ".join(words[:3]), " ".join(words[:1])):
        for form in ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y"):
            with suppress(ValueError):
                return datetime.strptime(candidate, form).date()
    return None


def _attachments(msg: Message, limit: int, body: Message | None,
                 most: int) -> Iterator[Attachment]:
    parts = [p for p in leaf_parts(msg) if p is not body and _is_attachment(p)
             and p.get_content_maintype() != "multipart"]
    for n, part in enumerate(parts, 1):
        if n > most:  # never decoded: its size from its text
            yield Attachment(_safe_filename(part_filename(part), n), part.get_content_type(),
                             _decoded_size(part, str(part.get_payload())), None,
                             refused=f"more than max_attachments ({most}) in one message")
        else:
            yield _attachment(part, n, limit)


def _attachment(part: Message, n: int, limit: int) -> Attachment:
    name, kind = _safe_filename(part_filename(part), n), part.get_content_type()
    payload, data = part.get_payload(), b""
    if isinstance(payload, list):  # an attached message, as it was sent
        with suppress(Exception):
            data = b"".join(p.as_bytes() for p in payload if isinstance(p, Message))
    elif (size := _decoded_size(part, str(payload))) > limit:  # never decoded, never copied
        return Attachment(name, kind, size, None, too_large=True, refused=_larger(size, limit))
    elif isinstance(decoded := part.get_payload(decode=True), bytes):
        data = decoded
    if len(data) > limit:
        return Attachment(name, kind, len(data), None, too_large=True,
                          refused=_larger(len(data), limit))
    return Attachment(name, kind, len(data), data)


def _larger(size: int, limit: int) -> str:
    return f"{size:,} bytes, larger than max_attachment ({limit:,})"


def _decoded_size(part: Message, payload: str) -> int:
    """The size of base64 content (exact when well-formed), else the payload's length."""
    if header_text(part, "Content-Transfer-Encoding").strip().lower() != "base64":
        return len(payload)
    chars = len(payload) - sum(payload.count(c) for c in "\r\n\t ")
    return chars * 3 // 4 - payload.rstrip()[-2:].count("=")


def _safe_filename(name: str | None, n: int) -> str:
    """A base name: no path, no "..", no controls, at most 120 characters (a file system
    counts bytes: bot/engine/papers.py cuts it to fit when it is written)."""
    name = unicodedata.normalize("NFC", name or "")
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = re.sub(r'[<>:"|?*]', "_", name.replace("\\", "/").rpartition("/")[2])
    name = re.sub(r"\.{2,}", ".", name).strip(" .")
    if len(name) > 120:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and len(ext) <= 16 else ""
        name = (stem if ext else name)[:120 - len(ext)].rstrip(" .") + ext
    return name or f"attachment-{n}"


# Members answer an invitation or a pack by mail as often as with the calendar's buttons.
_APOLOGIES = re.compile(
    r"\b(?:apolog(?:y|ies|ise|ize|ising|izing)|regrets"
    r"|(?:can'?t|cannot|can not|won'?t be able to|will not be able to|unable to|not able to"
    r"|won'?t|will not|shan'?t)\s+(?:make|attend|come|join|be (?:there|present|at|joining))"
    r"|(?:sorry|afraid)\b[^.!?\n]{0,60}\b(?:miss|not (?:make|attend|be (?:there|able)))"
    r"|(?:on (?:leave|holiday|annual leave)|off sick|away) (?:that|on the|this)\b)", re.I)
_ATTENDING = re.compile(
    r"\b(?:no apologies|(?:i|we)(?:'ll| will| can| shall) (?:be there|attend|make it|join)"
    r"|see you (?:there|then|on)|looking forward|count me in|i can make)", re.I)


def apologies(text: str) -> bool | None:
    """Whether a member's reply to an invitation or pack says they cannot come: True when
    it clearly does, None when it cannot be told (it mentions both, or neither)."""
    said = " ".join(text.replace("’", "'").split()[:120])
    if _APOLOGIES.search(said) and not _ATTENDING.search(said):
        return True
    return None
