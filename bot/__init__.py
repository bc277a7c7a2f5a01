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


COLLECT_AFTER = 50_000  # container objects allocated, net of those freed, between collections


def tune_collector() -> None:
    """Set Python's cyclic garbage collector for a process that plans: the youngest
    generation is collected after :data:`COLLECT_AFTER` net allocations, not 700. Planning
    makes and drops a few hundred thousand objects a batch of groups, freed by their
    reference counts alone; at the default each batch's promoted them to the oldest
    generation, whose full collections then walked the whole config (2,000 groups: 15 of
    the first plan's 82 s; bench/plan_scale.py). Cycles still go, a little later: the
    worker collects the young generations at the end of each tick, and keeps the config it
    loaded at start out of the collector's way (bot/engine/worker.py)."""
    import gc  # here: the launcher imports this module and must import nothing else

    gc.set_threshold(COLLECT_AFTER, 10, 10)
