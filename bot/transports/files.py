"""Files and folders clerk writes, private to the user it runs as: folders 0700, files 0600.

The ``clerk`` command sets the process umask to 0o077 when it starts (bot/cli/main.py); these
functions give the same modes explicitly, so clerk used as a library, or under a looser
umask, writes nothing another user can read. The outbox, the papers members send and the
quarantine hold personal data (the state database is made private by bot/engine/store.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("clerk")


def private_folder(path: Path) -> Path:
    """``path`` made with any missing parents, each 0700 (``mkdir -p`` would give the
    parents the umask's mode). A folder that exists is left as it is."""
    missing: list[Path] = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            folder.mkdir(mode=0o700)
    return path


def tighten(path: Path) -> None:
    """A folder or file an older clerk left readable by others, made private to its user."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
            log.warning("%s was readable by other users; now by clerk's user alone", path)
    except FileNotFoundError:
        return


def write_private(path: Path, data: bytes, *, new: bool = False, fsync: bool = False) -> None:
    """``data`` written to ``path``, a file of mode 0600. ``new``: never over an existing
    file (FileExistsError). A file that could not be written whole is removed."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
