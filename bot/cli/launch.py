"""The ``clerk`` command's entry point: ``--help`` from a cache of click's own output.

Importing click costs about four times starting Python (bench/help_time.py), so
``clerk [COMMAND ...] --help`` (or ``-h``) is answered from a file that click itself wrote the
first time that help was asked for, without importing click. The file's first line is its key
in full, checked on every read: the words asked about, clerk's version, Python's, the size and
time of every source file the text comes from (``bot/__init__.py``, ``bot/cli/*.py`` and
click's ``__init__.py``), the terminal width, the environment variables that can change
the text and stdout's encoding. Anything else, a miss, or a file that does not match goes to
click (``bot.cli.main``) at once; a miss also stores what click printed if it exited 0.

The cache lives in ``$XDG_CACHE_HOME/clerk/help/`` (default ``~/.cache/clerk/help/``), one file
per question (words, width, environment, install), replaced when what it was made from changes.
``CLERK_HELP_CACHE=0`` turns it off. It never fails a command: whatever goes wrong with it,
click answers. Only ``os`` and ``sys`` are imported here, and ``bot`` itself (see
``python -X importtime``).
"""

import os
import sys

from bot import cache_folder

# no `from __future__ import annotations` and no typing: each is an import at start-up
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

FORMAT = "clerk help cache 1"
HELP = ("--help", "-h")
# What click's text depends on besides the sources: gettext's language (click's own strings
# are translatable) and the group's `--config` (checked before a command's help is shown).
# Not CLERK_STATE: it changes no help text, and a URL may hold a password.
ENV = ("COLUMNS", "LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "CLERK_CONFIG")
PRIME = 2**64 - 59  # the largest prime below 2**64, for a hash without importing zlib


def main() -> None:
    """Entry point of the ``clerk`` command (``bot.cli.main`` with the help cache in front)."""
    found = _lookup(sys.argv[1:])
    if found is None:
        _click()
        return
    path, key = found
    text = _read(path, key)
    if text is None:
        _miss(path, key)
    else:
        _serve(text)


def _click() -> None:
    from bot.cli.main import main as click_main

    click_main()


def _lookup(args: list[str]) -> tuple[str, bytes] | None:
    """(cache file, key line) for a help request the cache may answer, else None."""
    if not args or args[-1] not in HELP or os.environ.get("CLERK_HELP_CACHE") == "0":
        return None
    words = args[:-1]
    if any(w.startswith("-") for w in words) or os.environ.get("_CLERK_COMPLETE"):
        return None  # options, or a shell asking click to complete a word
    if words and not _config_passes():
        return None
    import io  # loaded at start-up already: it costs nothing

    out = sys.stdout
    if not isinstance(out, io.TextIOWrapper):  # no stdout, or someone else's
        return None
    folder = cache_folder("help")
    here = os.path.dirname(os.path.abspath(__file__))
    click_init = _find_click()
    if folder is None or click_init is None:
        return None
    try:
        files = [("__init__.py", os.path.join(os.path.dirname(here), "__init__.py"))]
        files += [(f"cli/{name}", os.path.join(here, name))
                  for name in sorted(os.listdir(here)) if name.endswith(".py")]
        sources = tuple((name, *_stat(path)) for name, path in files)
        click_stat = _stat(click_init)
    except OSError:
        return None
    from bot import __version__

    question = (FORMAT, tuple(words), args[-1], _columns(),
                tuple(os.environ.get(name) for name in ENV), out.encoding, out.errors,
                here, click_init)
    made_of = (__version__, sys.version, sources, click_stat)
    key = repr((question, made_of)).encode("utf-8", "backslashreplace")
    name = f"{_digest(repr(question).encode('utf-8', 'backslashreplace')):016x}"
    return os.path.join(folder, name), key


def _config_passes() -> bool:
    """Whether the group's ``--config`` passes click's check (``click.Path(file_okay=False)``).

    A command's help is shown after the group's options are processed, so a ``config`` that
    is a file (or unreadable) makes ``clerk plan --help`` exit 2; that is click's to say. The
    default is relative to the working folder, which is not part of the key.
    """
    folder = os.environ.get("CLERK_CONFIG") or "config"
    if os.path.isfile(folder):
        return False
    return not os.path.exists(folder) or os.access(folder, os.R_OK)


def _find_click() -> str | None:
    """Where ``import click`` would load click from, without importing it (or importlib.util)."""
    try:
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec("click", None) if find_spec else None
            if spec is not None:
                origin = spec.origin
                return origin if isinstance(origin, str) and os.path.isfile(origin) else None
    except Exception:  # a finder of someone else's: leave it to the import system
        return None
    return None


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def _columns() -> int:
    """The width click formats for: ``shutil.get_terminal_size().columns``, without shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stdout = sys.__stdout__
        try:  # no stdout, a closed one or not a terminal: shutil's fallback, 80
            columns = os.get_terminal_size(stdout.fileno()).columns if stdout else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _digest(data: bytes) -> int:
    """A 64-bit hash that is the same in every process (``hash()`` of bytes is salted)."""
    return int.from_bytes(data, "big") % PRIME if data else 0


def _check(text: bytes) -> bytes:
    return b"%d %016x" % (len(text), _digest(text))


def _read(path: str, key: bytes) -> bytes | None:
    """The help text stored under ``key``; None when missing, unreadable, torn or not ours."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError):
        return None
    head, _, rest = data.partition(b"\n")
    check, newline, text = rest.partition(b"\n")
    if head != key or not newline or not text or check != _check(text):
        return None
    return text


def _serve(text: bytes) -> None:
    """Write ``text`` to stdout as click would have; a closed pipe exits 1 quietly, as click."""
    out = sys.stdout
    try:
        out.flush()
        buffer = out.buffer
        view = memoryview(text)
        while view:
            written = buffer.write(view)
            if not written:
                break
            view = view[written:]
        buffer.flush()
    except BrokenPipeError:
        import contextlib

        with contextlib.suppress(OSError, ValueError):  # the final flush goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        sys.exit(1)


class _Tee:
    """stdout's binary stream, keeping a copy of every byte written through it."""

    def __init__(self, stream: "BinaryIO") -> None:
        self.stream = stream
        self.copy = bytearray()

    def write(self, data: bytes) -> int | None:
        written = self.stream.write(data)
        if written:
            self.copy += memoryview(data).cast("B")[:written]
        return written

    def close(self) -> None:
        """stdout stays open."""

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def _miss(path: str, key: bytes) -> None:
    """Run click with stdout teed; store what it printed when it exits 0, then exit as it did."""
    import io

    out = sys.stdout
    if not isinstance(out, io.TextIOWrapper):  # (_lookup has checked it)
        _click()
        return
    tee = _Tee(out.buffer)
    try:  # the same text layer as stdout, over the tee: click encodes (or re-wraps an ascii
        # stdout in UTF-8) exactly as it would on stdout itself
        teed = io.TextIOWrapper(tee, encoding=out.encoding,  # type: ignore[type-var]
                                errors=out.errors, line_buffering=out.line_buffering,
                                write_through=out.write_through)
    except Exception:  # never fail the command because of the cache
        _click()
        return
    code: int | str | None = 0
    try:
        out.flush()
        sys.stdout = teed
        _click()
    except SystemExit as exc:
        code = exc.code
    finally:
        if sys.stdout is teed:  # (click swaps in a wrapper of its own after a broken pipe)
            try:
                teed.flush()
            finally:
                sys.stdout = out
                teed.detach()
    if code in (0, None) and tee.copy:
        _store(path, key, bytes(tee.copy))
    sys.exit(code)


def _store(path: str, key: bytes, text: bytes) -> None:
    """Write the cache file atomically; any failure just leaves the cache without it."""
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temp, "wb") as f:
            f.write(key + b"\n" + _check(text) + b"\n" + text)
        os.replace(temp, path)
    except (OSError, ValueError):
        import contextlib  # (click has imported it already)

        with contextlib.suppress(OSError):
            os.unlink(temp)
