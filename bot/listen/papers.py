"""What a paper a member sent really is: its type by content, and the name it is kept under.

An attachment goes into a meeting's papers folder (and so into every member's agenda pack)
only when its *content* is of a type on the allow-list below; its name and its declared
Content-Type are never believed. Everything else is quarantined for the admin
(bot/engine/papers.py).

Allowed, and how each is told:

- PDF: starts with ``%PDF-``.
- PNG, JPEG, GIF: their signatures (``\\x89PNG\\r\\n\\x1a\\n``, ``\\xff\\xd8\\xff``,
  ``GIF87a``/``GIF89a``).
- Office Open XML (.docx, .xlsx, .pptx): a ZIP holding ``[Content_Types].xml`` that names the
  main part of a Word document, a workbook or a presentation, and the ``word/``, ``xl/`` or
  ``ppt/`` part. A macro-enabled one (``macroEnabled`` type, a ``vbaProject.bin``) is not.
- OpenDocument (.odt, .ods, .odp): a ZIP whose ``mimetype`` member says so; not one with
  macros (``Basic/``, ``Scripts/``).
- Legacy Office (.doc, .xls, .ppt): an OLE2 compound file with a ``WordDocument``,
  ``Workbook``/``Book`` or ``PowerPoint Document`` stream in its directory (an .msi or .msg is
  OLE2 too, and is not allowed).
- Plain text and CSV: UTF-8 (or UTF-16 with a BOM) without NUL or other control characters
  than tab, line breaks and form feed, and not markup (HTML, XML, SVG), RTF, PostScript, a
  ``#!`` script or an e-mail message.

A ZIP is looked at only after its end-of-central-directory record and its members' declared
sizes say it is small enough (``ZIP_MEMBERS``, ``ZIP_UNPACKED``): a zip bomb is refused before
anything is decompressed, and then only ``[Content_Types].xml`` or ``mimetype`` is read, a
bounded number of bytes.

Names: a paper keeps the sender's name with its extension made to match its type. Trailing
extensions that are known file types but not this one are dropped ("Updated agenda.pdf.exe"
holding a PDF becomes "Updated agenda.pdf", "report.exe" holding a PDF "report.pdf"); an
unknown last extension is kept and the type's added ("minutes.v2" → "minutes.v2.pdf").
:func:`fit` cuts a name to a number of UTF-8 bytes (a filesystem's limit), keeping its
extension.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass

ZIP_MEMBERS = 1000  # an Office file has tens of parts; a workbook of many sheets, hundreds
ZIP_UNPACKED = 256 * 1024 * 1024  # the members' declared sizes together, at most
_SMALL_READ = 1024 * 1024  # at most this much of [Content_Types].xml is read


@dataclass(frozen=True)
class Sniffed:
    """What a paper's content is: an allowed type (``ext``) or why it is not (``reason``)."""

    ext: str = ""  # "pdf", "docx", "jpg", "txt" ...; "" when not allowed
    mime: str = "application/octet-stream"
    what: str = ""  # for people: "a PDF document", "a Windows program (MZ header)"
    aliases: tuple[str, ...] = ()  # extensions that name this type ("jpg", "jpeg")

    @property
    def allowed(self) -> bool:
        return bool(self.ext)


def _allowed(ext: str, mime: str, what: str, *aliases: str) -> Sniffed:
    return Sniffed(ext, mime, what, (ext, *aliases))


def _refused(what: str) -> Sniffed:
    return Sniffed(what=what)


_OOXML = "application/vnd.openxmlformats-officedocument."
PDF = _allowed("pdf", "application/pdf", "a PDF document")
PNG = _allowed("png", "image/png", "a PNG image")
JPEG = _allowed("jpg", "image/jpeg", "a JPEG image", "jpeg", "jpe")
GIF = _allowed("gif", "image/gif", "a GIF image")
DOCX = _allowed("docx", _OOXML + "wordprocessingml.document", "a Word document")
XLSX = _allowed("xlsx", _OOXML + "spreadsheetml.sheet", "an Excel workbook")
PPTX = _allowed("pptx", _OOXML + "presentationml.presentation", "a PowerPoint presentation")
DOC = _allowed("doc", "application/msword", "a Word 97-2003 document")
XLS = _allowed("xls", "application/vnd.ms-excel", "an Excel 97-2003 workbook")
PPT = _allowed("ppt", "application/vnd.ms-powerpoint", "a PowerPoint 97-2003 presentation")
_ODF = "application/vnd.oasis.opendocument."
ODT = _allowed("odt", _ODF + "text", "an OpenDocument text")
ODS = _allowed("ods", _ODF + "spreadsheet", "an OpenDocument spreadsheet")
ODP = _allowed("odp", _ODF + "presentation", "an OpenDocument presentation")
TEXT = _allowed("txt", "text/plain", "plain text", "text")
CSV = _allowed("csv", "text/csv", "a CSV table", "tsv")

ALLOWED = (PDF, PNG, JPEG, GIF, DOCX, XLSX, PPTX, DOC, XLS, PPT, ODT, ODS, ODP, TEXT, CSV)

# signatures of what is refused, to tell the admin what it was
_REFUSED = (
    (b"MZ", "a Windows program (MZ header)"),
    (b"\x7fELF", "a Linux program (ELF)"),
    (b"\xcf\xfa\xed\xfe", "a macOS program (Mach-O)"),
    (b"\xce\xfa\xed\xfe", "a macOS program (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "a macOS program or Java class"),
    (b"#!", "a script (#!)"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"MSCF", "a Windows cabinet archive"),
    (b"{\\rtf", "an RTF document (it can carry objects that run)"),
    (b"%!", "a PostScript program"),
    (b"\x00asm", "a WebAssembly module"),
    (b"L\x00\x00\x00\x01\x14\x02\x00", "a Windows shortcut (.lnk)"),
)


def sniff(data: bytes, name: str = "") -> Sniffed:
    """The type of ``data`` by its content; ``name`` only chooses between .txt and .csv for
    text, which both are."""
    if not data:
        return _refused("an empty file")
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data.startswith(b"PK\x03\x04"):
        return _zip(data)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole2(data)
    for signature, what in _REFUSED:
        if data.startswith(signature):
            return _refused(what)
    return _text(data, name)


# --- ZIP: Office Open XML and OpenDocument ----------------------------------------------------

def _zip_entries(data: bytes) -> int | None:
    """The member count its end-of-central-directory record declares (ZIP64 too), or None
    when there is none: read before Python's zipfile builds an object per member."""
    tail_at = max(0, len(data) - (22 + 65535))
    at = data.rfind(b"PK\x05\x06", tail_at)
    if at < 0 or len(data) - at < 22:
        return None
    count = int.from_bytes(data[at + 10:at + 12], "little")
    if count != 0xFFFF:
        return count
    locator = at - 20  # ZIP64: the locator just before, naming the ZIP64 record
    if locator < 0 or data[locator:locator + 4] != b"PK\x06\x07":
        return None
    record = int.from_bytes(data[locator + 8:locator + 16], "little")
    if data[record:record + 4] != b"PK\x06\x06":
        return None
    return int.from_bytes(data[record + 32:record + 40], "little")


def _zip(data: bytes) -> Sniffed:
    entries = _zip_entries(data)
    if entries is None:
        return _refused("a damaged ZIP archive")
    if entries > ZIP_MEMBERS:
        return _refused(f"a ZIP archive of {entries} members (more than {ZIP_MEMBERS}: a "
                        "zip bomb?)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > ZIP_MEMBERS:
                return _refused(f"a ZIP archive of {len(infos)} members")
            unpacked = sum(i.file_size for i in infos)
            if unpacked > ZIP_UNPACKED:
                return _refused(f"a ZIP archive that unpacks to {unpacked:,} bytes (more "
                                f"than {ZIP_UNPACKED:,}: a zip bomb?)")
            return _zip_kind(z, {i.filename for i in infos})
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            ValueError, EOFError, OSError, zlib.error):  # damaged, encrypted, odd methods
        return _refused("a damaged or encrypted ZIP archive")


def _member(z: zipfile.ZipFile, name: str, most: int) -> bytes:
    with z.open(name) as f:  # reads at most ``most`` bytes, whatever the member claims
        return f.read(most)


def _zip_kind(z: zipfile.ZipFile, names: set[str]) -> Sniffed:
    if "mimetype" in names:
        declared = _member(z, "mimetype", 100).strip().decode("ascii", "replace")
        found = next((k for k in (ODT, ODS, ODP) if k.mime == declared), None)
        if found is None:
            return _refused(f"a ZIP archive (mimetype {declared[:60]!r})")
        if any(n.startswith(("Basic/", "Scripts/")) for n in names):
            return _refused(f"{found.what} with macros")
        return found
    if "[Content_Types].xml" not in names:
        return _refused("a ZIP archive")
    types = _member(z, "[Content_Types].xml", _SMALL_READ).decode("utf-8", "replace")
    if "macroenabled" in types.lower() or any(n.lower().endswith("vbaproject.bin")
                                              for n in names):
        return _refused("a macro-enabled Office document")
    for kind, folder, main in ((DOCX, "word/", "wordprocessingml.document.main+xml"),
                               (XLSX, "xl/", "spreadsheetml.sheet.main+xml"),
                               (PPTX, "ppt/", "presentationml.presentation.main+xml")):
        if main in types and any(n.startswith(folder) for n in names):
            return kind
    return _refused("a ZIP archive (an Office file of another kind, or none)")


# --- OLE2: Word, Excel and PowerPoint 97-2003 ---------------------------------------------------

_OLE_STREAMS = ((DOC, ("WordDocument",)), (XLS, ("Workbook", "Book")),
                (PPT, ("PowerPoint Document",)))


def _ole2(data: bytes) -> Sniffed:
    """Which Office 97-2003 file it is, from the streams its directory names: a directory
    entry (128 bytes, at a multiple of 128 since sectors are 512 or 4096 bytes) holds the
    name in UTF-16LE, its length in bytes with the NUL at offset 64, and type 2 (a stream)
    at offset 66."""
    for kind, streams in _OLE_STREAMS:
        for stream in streams:
            encoded = stream.encode("utf-16-le") + b"\x00\x00"
            size = len(encoded).to_bytes(2, "little")
            at = data.find(encoded)
            while at >= 0:
                if at % 128 == 0 and data[at + 64:at + 66] == size \
                        and data[at + 66:at + 67] == b"\x02":
                    return kind
                at = data.find(encoded, at + 1)
    return _refused("an OLE2 compound file that is not a Word, Excel or PowerPoint file "
                    "(an installer, an Outlook message?)")


# --- plain text -----------------------------------------------------------------------------

_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_MARKUP = re.compile(r"<\s*(?:!doctype|\?xml|html|head|body|script|svg|iframe|object|embed"
                     r"|meta|form|a\s|img\s|xsl|math)\b", re.IGNORECASE)
_MAIL = re.compile(r"(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*){2,}", re.ASCII)
_MAIL_FIELDS = re.compile(r"^(?:mime-version|content-type|received|message-id|from):",
                          re.IGNORECASE | re.MULTILINE)


def _text(data: bytes, name: str) -> Sniffed:
    # UTF-16 only with a BOM (the codec reads it and drops it); UTF-8 with one or none
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return _refused("an unknown type (neither a document, an image nor plain text)")
    if _CONTROLS.search(text):
        return _refused("an unknown type (binary data)")
    start = text.lstrip("\ufeff \t\r\n\f")
    if start.startswith("<") or _MARKUP.search(text):
        return _refused("HTML or XML markup (a web page, an SVG image: it can run scripts)")
    if start.startswith(("#!", "{\\rtf", "%!")):
        return _refused("a script, RTF or PostScript text")
    head = start[:8192].replace("\r\n", "\n")
    if _MAIL.match(head) and len(_MAIL_FIELDS.findall(head.partition("\n\n")[0])) >= 2:
        return _refused("an e-mail message (with its own attachments)")
    return CSV if _extension(name) in CSV.aliases else TEXT


# --- names ----------------------------------------------------------------------------------

_EXT = re.compile(r"\.([A-Za-z][A-Za-z0-9]{0,7})$")
# extensions that name a file type: dropped from the end of a name when not the paper's own
KNOWN = frozenset((
    "exe", "scr", "com", "bat", "cmd", "pif", "msi", "msp", "msc", "jar", "js", "jse", "vbs",
    "vbe", "wsf", "wsh", "ps1", "psm1", "psd1", "hta", "cpl", "dll", "sys", "drv", "ocx", "lnk",
    "url", "reg", "inf", "scf", "application", "gadget", "appref", "sh", "bash", "zsh", "csh",
    "ksh", "py", "pyc", "pyw", "pl", "rb", "php", "asp", "aspx", "jsp", "cgi", "html", "htm",
    "xhtml", "shtml", "mht", "mhtml", "svg", "svgz", "xml", "xsl", "xslt", "swf", "zip", "zipx",
    "rar", "7z", "gz", "tgz", "bz2", "xz", "tar", "iso", "img", "vhd", "vhdx", "dmg", "cab",
    "arj", "lz", "lzh", "ace", "apk", "deb", "rpm", "pdf", "doc", "docx", "docm", "dot", "dotx",
    "dotm", "xls", "xlsx", "xlsm", "xlsb", "xlt", "xltx", "xltm", "xlam", "ppt", "pptx", "pptm",
    "pps", "ppsx", "ppsm", "pot", "potx", "potm", "ppam", "odt", "ods", "odp", "odg", "rtf",
    "wri", "png", "jpg", "jpeg", "jpe", "gif", "bmp", "tif", "tiff", "webp", "heic", "ico", "txt",
    "text", "csv", "tsv", "eml", "msg", "ics", "vcf",
))


def _extension(name: str) -> str:
    m = _EXT.search(name)
    return m.group(1).lower() if m else ""


def paper_name(name: str, kind: Sniffed) -> str:
    """``name`` with an extension that matches ``kind`` (see the module's docstring)."""
    stem = name
    while (ext := _extension(stem)) and ext in KNOWN and ext not in kind.aliases:
        stem = stem[:-len(ext) - 1]
    if _extension(stem) in kind.aliases:
        return stem
    return f"{stem.rstrip(' .') or 'paper'}.{kind.ext}"


def fit(name: str, most: int) -> str:
    """``name`` cut to at most ``most`` bytes of UTF-8, keeping its extension and whole
    characters; "" when not even the extension fits."""
    if len(name.encode()) <= most:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    room = most - len(tail.encode())
    if room <= 0:
        return ""
    cut = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
    return f"{cut}{tail}" if cut else ""
