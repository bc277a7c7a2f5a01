"""clerk: the clerk of a recurring group (distribution ``clerkbot``, command ``clerk``)."""

import os

__version__ = "0.1.0"


def cache_folder(name: str) -> str | None:
    """Where clerk keeps its cache ``name`` (the help, the compiled templates):
    ``$XDG_CACHE_HOME/clerk/<name>``, by default ``~/.cache/clerk/<name>``; None when there
    is no home to put it in."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: the XDG default
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "clerk", name)
