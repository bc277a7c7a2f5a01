"""jinja2 templates: the defaults shipped with clerk, overridable per group.

A message template ``NAME`` is three files: ``NAME.subject.j2`` (one line), ``NAME.txt.j2``
(the plain-text part) and ``NAME.html.j2`` (the HTML part, autoescaped). A group overrides any
of them by putting a file of the same name in its ``templates/`` folder. Undefined variables
are errors (StrictUndefined), never silent blanks.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import sys
import traceback
from collections.abc import Callable, Collection
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import jinja2.bccache
import jinja2.meta

from bot.domain.errors import Problem
from bot.domain.model import Group
from bot.transports.files import private_folder

log = logging.getLogger("clerk")
PARTS = ("subject", "txt", "html")
T = TypeVar("T")


def default_folder() -> Path:
    """The shipped templates: inside the wheel, or ``templates/`` of a source checkout."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_templates"
    return packaged if packaged.is_dir() else here.parent / "templates"


def _longdate(value: datetime) -> str:
    return f"{value:%A} {value.day} {value:%B %Y}"


def _hm(value: datetime) -> str:
    return f"{value:%H:%M}"


def environment(group: Group) -> jinja2.Environment:
    """The group's templates: its own overrides first, then the defaults. Groups without
    overrides share one environment, so the defaults are compiled once per process. Looked up
    once per loaded group (a config loaded again is new groups, looked up again)."""
    def make() -> jinja2.Environment:
        overrides = group.folder / "templates"
        return _environment(overrides if overrides.is_dir() else None)

    return per_group(_ENVIRONMENTS, id(group), group, make)


_ENVIRONMENTS: dict[Any, tuple[Group, jinja2.Environment]] = {}


def per_group(cache: dict[Any, tuple[Group, T]], key: Any, group: Group,
              make: Callable[[], T], most: int = 16_384) -> T:
    """``cache[key]``, made by ``make()`` for this loaded ``group``: the group is kept with
    the value, so its id is never reused and a config loaded again (new groups) makes anew."""
    known = cache.get(key)
    if known is None or known[0] is not group:
        if len(cache) >= most:
            cache.clear()
        known = cache[key] = (group, make())
    return known[1]


def _environment(overrides: Path | None) -> jinja2.Environment:
    found = _COMPILED.get(overrides)
    if found is None:
        if len(_COMPILED) >= 512:
            _COMPILED.clear()
        found = _COMPILED[overrides] = _new_environment(overrides)
    return found


_COMPILED: dict[Path | None, jinja2.Environment] = {}  # by the overrides folder


# how the templates are compiled (the bytecode cache's folder is named after these too);
# not reloaded: the worker clears the environments when the config changes
_OPTIONS: dict[str, Any] = {"auto_reload": False, "keep_trailing_newline": True,
                            "trim_blocks": True, "lstrip_blocks": True}
_ESCAPED = ("html.j2",)  # autoescaped


class _ShippedCache(jinja2.FileSystemBytecodeCache):
    """jinja's bytecode cache for the shipped templates alone (a group's own are compiled in
    each process: their folders come and go, ``clerk simulate`` copies them), which never
    fails a render: a cache that cannot be read or written is no cache, and a file that
    does not load is compiled again. jinja checks each file against its template's source
    (and its own and Python's versions); the folder is clerk's version's."""

    def __init__(self, directory: str, shipped: str) -> None:
        super().__init__(directory)
        self.shipped = shipped

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        if filename is None or not filename.startswith(self.shipped):
            return ""
        return super().get_cache_key(name, filename)

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key:
            try:
                super().load_bytecode(bucket)
            except Exception:  # unreadable, truncated, or not jinja's: compiled again
                bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key:
            with contextlib.suppress(OSError):
                super().dump_bytecode(bucket)


@lru_cache(maxsize=1)
def _bytecode_cache() -> _ShippedCache | None:
    """The compiled shipped templates, kept across processes in
    ``$XDG_CACHE_HOME/clerk/templates/<version>-<how>/`` (default ``~/.cache/clerk/…``; how:
    the compile options, jinja's version and Python's), a folder private to clerk's user:
    compiling them is most of the time a command takes to load a config.
    ``CLERK_TEMPLATE_CACHE=0`` turns it off."""
    if os.environ.get("CLERK_TEMPLATE_CACHE") == "0":
        return None
    from bot import __version__, cache_folder

    base = cache_folder("templates")
    if base is None:
        return None
    made = repr((sorted(_OPTIONS.items()), _ESCAPED, jinja2.StrictUndefined.__name__,
                 jinja2.__version__, sys.implementation.cache_tag))
    folder = Path(base) / (
        f"{__version__}-{hashlib.sha256(made.encode()).hexdigest()[:12]}")
    try:
        private_folder(folder)
        found = os.lstat(folder)
    except OSError:
        return None
    # code is loaded from it: only from a real folder of this user that no one else can write
    # (jinja's own default cache checks the same), never one planted or left open
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() \
            or found.st_mode & 0o022:
        log.warning("not using %s for compiled templates: it is not a folder of clerk's "
                    "user that only it can write", folder)
        return None
    return _ShippedCache(str(folder), str(default_folder()) + os.sep)


def _new_environment(overrides: Path | None) -> jinja2.Environment:
    search = [str(default_folder())]
    if overrides is not None:
        search.insert(0, str(overrides))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=_ESCAPED,
                                            default_for_string=False),
        **_OPTIONS,
    )
    env.filters["longdate"] = _longdate
    env.filters["hm"] = _hm
    return env


def render(group: Group, template: str, part: str, context: dict[str, Any]) -> str:
    text = environment(group).get_template(f"{template}.{part}.j2").render(context)
    return " ".join(text.split()) if part == "subject" else text


def uses(group: Group, template: str, part: str, variable: str) -> bool:
    """Whether a template (or anything it includes) refers to ``variable``; when it does
    not, one rendering serves a whole batch of recipients."""
    return _uses(environment(group), f"{template}.{part}.j2", variable)


@lru_cache(maxsize=1024)
def _uses(env: jinja2.Environment, name: str, variable: str) -> bool:
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    ast = env.parse(source)
    if variable in jinja2.meta.find_undeclared_variables(ast):
        return True
    return any(_uses(env, ref, variable) for ref in jinja2.meta.find_referenced_templates(ast)
               if ref)


def clear_cache(folders: Collection[Path] | None = None) -> None:
    """Forget the templates compiled: those of the groups in ``folders`` (their overrides
    may have changed), or all of them."""
    if folders is None:
        _ENVIRONMENTS.clear()
        _COMPILED.clear()
        _uses.cache_clear()
        return
    for folder in folders:  # (their groups are loaded again: new groups, new look-ups)
        _COMPILED.pop(folder / "templates", None)


def _where(exc: Exception, name: str, env: jinja2.Environment) -> tuple[str, int | None]:
    """The template file and line an exception was raised from."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return exc.filename or name, exc.lineno
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return frame.filename, frame.lineno
    source = env.loader.get_source(env, name)[1] if env.loader else None  # type: ignore[union-attr]
    return source or name, None


def check(group: Group, uses: list[tuple[str, str, dict[str, Any]]]) -> list[Problem]:
    """Render each (rule id, template, example context) of ``uses`` with the group's
    templates; every template missing or failing is a problem with its file and line."""
    problems: list[Problem] = []
    env = environment(group)
    for rule_id, template, context in uses:
        for part in PARTS:
            name = f"{template}.{part}.j2"
            try:
                env.get_template(name).render(context)
            except jinja2.TemplateNotFound:
                problems.append(Problem(
                    str(group.folder / "group.toml"), f"template {name} not found",
                    key=f"rule {rule_id}",
                    hint=f"add {group.folder / 'templates' / name} or fix `template`"))
            except Exception as exc:  # any error a template raises is the user's to fix
                where, line = _where(exc, name, env)
                message = exc.message if isinstance(exc, jinja2.TemplateError) else \
                    f"{type(exc).__name__}: {exc}"
                problems.append(Problem(where, f"template error: {message}", line=line,
                                        key=f"rule {rule_id}", hint=_hint(exc)))
    return problems


def _hint(exc: Exception) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        return "see docs/configuration.md 'Templates' for the variables each message has"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return "check the {{ }} and {% %} tags around this line"
    return "fix the template"
