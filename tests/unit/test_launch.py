"""The launcher (bot/cli/launch.py): ``clerk … --help`` answered from a cache of click's own output.

Every test runs clerk as a subprocess with a cache of its own (``XDG_CACHE_HOME``) and every
import printed (``PYTHONPROFILEIMPORTTIME``): "served" means answered from the cache without
importing click. ``python -m bot.cli`` is the reference: always click, never the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import bot
from bot.cli.main import cli
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # subprocesses

SCRIPT = Path(sys.executable).parent / "clerk"  # the console script pip installed
LAUNCH = {"module": [sys.executable, "-m", "bot"], "script": [str(SCRIPT)]}
CLICK = [sys.executable, "-m", "bot.cli"]
# what the tests set themselves (or must not inherit)
UNSET = ("COLUMNS", "LINES", "CLERK_HELP_CACHE", "CLERK_CONFIG", "CLERK_STATE", "LANGUAGE",
         "LC_ALL", "LC_MESSAGES", "PYTHONIOENCODING", "_CLERK_COMPLETE", "PYTHONSTARTUP")


@dataclass
class Done:
    code: int
    out: bytes
    err: str  # without the import times
    modules: set[str]  # every module imported

    @property
    def served(self) -> bool:
        return "click" not in self.modules and "bot.cli.main" not in self.modules


def environment(cache: Path, pythonpath: Path = ROOT, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(XDG_CACHE_HOME=str(cache), PYTHONPATH=str(pythonpath), LANG="C.UTF-8",
               PYTHONPROFILEIMPORTTIME="1")
    env.update(extra)
    return env


def done(proc: subprocess.CompletedProcess[bytes]) -> Done:
    lines = proc.stderr.decode(errors="replace").splitlines(True)
    times = [line for line in lines if line.startswith("import time:")]
    modules = {line.rsplit("|", 1)[1].strip() for line in times if "self [us]" not in line}
    return Done(proc.returncode, proc.stdout,
                "".join(line for line in lines if line not in times), modules)


def run(cmd: list[str], cache: Path, cwd: Path, pythonpath: Path = ROOT,
        **extra: str) -> Done:
    return done(subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=60,
                               env=environment(cache, pythonpath, **extra)))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def clerk(cache: Path, tmp_path: Path) -> Callable[..., Done]:
    """Run the launcher (``python -m bot``, or the console script with how="script")."""
    def invoke(*args: str, how: str = "module", cwd: Path = tmp_path,
               pythonpath: Path = ROOT, **extra: str) -> Done:
        if how == "script" and not SCRIPT.is_file():
            pytest.skip(f"no console script {SCRIPT.name} next to {sys.executable}")
        return run([*LAUNCH[how], *args], cache, cwd, pythonpath, **extra)

    return invoke


@pytest.fixture
def click_says(cache: Path, tmp_path: Path) -> Callable[..., Done]:
    """What click itself prints (``python -m bot.cli``: no launcher, no cache)."""
    def invoke(*args: str, cwd: Path = tmp_path, pythonpath: Path = ROOT,
               **extra: str) -> Done:
        return run([*CLICK, *args], cache, cwd, pythonpath, **extra)

    return invoke


def copy_of_clerk(tmp_path: Path) -> Path:
    """A copy of the ``bot`` package to put on PYTHONPATH: the real tree is never touched."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "bot", src / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def entries(cache: Path) -> list[Path]:
    folder = cache / "clerk" / "help"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def help_paths(command: click.Command = cli, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The words of every command and group, nested groups included: () is ``clerk`` itself."""
    found = [words]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += help_paths(sub, (*words, name))
    return found


@pytest.mark.parametrize("how", ["module", "script"])
def test_the_first_help_is_stored_and_the_second_is_served_without_click(
        how: str, clerk: Callable[..., Done], click_says: Callable[..., Done], cache: Path):
    first = clerk("plan", "--help", how=how)
    assert first.code == 0 and first.err == ""
    assert "click" in first.modules  # a miss: click answered
    [entry] = entries(cache)
    key = entry.read_bytes().split(b"\n", 1)[0].decode()
    assert "('plan',)" in key and repr(sys.version) in key and repr(bot.__version__) in key
    assert "cli/records.py" in key and os.path.join("click", "__init__.py") in key
    second = clerk("plan", "--help", how=how)
    assert second.code == 0 and second.err == "" and second.served
    assert second.out == first.out == click_says("plan", "--help").out
    assert first.out.startswith(b"Usage: clerk plan [OPTIONS]")


@pytest.mark.parametrize("words", help_paths(), ids=lambda w: " ".join(w) or "clerk")
def test_every_help_is_byte_identical_to_click_s(
        words: tuple[str, ...], clerk: Callable[..., Done], click_says: Callable[..., Done]):
    reference = click_says(*words, "--help")
    assert reference.code == 0 and reference.out
    first, second = clerk(*words, "--help"), clerk(*words, "--help")
    assert not first.served and second.served
    for d in (first, second):
        assert (d.code, d.out, d.err) == (reference.code, reference.out, reference.err)


def test_h_and_help_are_kept_apart_with_the_same_text(clerk: Callable[..., Done],
                                                       cache: Path):
    long, short = clerk("actions", "add", "--help"), clerk("actions", "add", "-h")
    assert not short.served and short.out == long.out  # -h is a help of its own
    assert len(entries(cache)) == 2
    assert clerk("actions", "add", "-h").served


def test_another_width_is_rendered_for_that_width(clerk: Callable[..., Done],
                                                  click_says: Callable[..., Done]):
    wide = clerk("--help")
    narrow = clerk("--help", COLUMNS="60")
    assert not narrow.served and narrow.out != wide.out
    assert narrow.out == click_says("--help", COLUMNS="60").out
    assert max(len(line) for line in narrow.out.decode().splitlines()) <= 60
    assert clerk("--help", COLUMNS="60").served and clerk("--help").served
    assert clerk("--help", COLUMNS="60").out == narrow.out


def test_the_terminal_s_own_width_is_used(cache: Path, tmp_path: Path,
                                          click_says: Callable[..., Done]):
    pty = pytest.importorskip("pty")
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    import struct

    def on_terminal(columns: int) -> Done:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        proc = subprocess.Popen([*LAUNCH["module"], "--help"], cwd=tmp_path,
                                env=environment(cache), stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            out += chunk
        _, err = proc.communicate(timeout=60)
        os.close(master)
        return done(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                out.replace(b"\r\n", b"\n"), err))

    first = on_terminal(60)
    assert first.code == 0 and not first.served
    assert first.out == click_says("--help", COLUMNS="60").out
    assert on_terminal(60).served and on_terminal(60).out == first.out
    wide = on_terminal(100)
    assert not wide.served and wide.out == click_says("--help", COLUMNS="100").out


def _truncated(data: bytes) -> bytes:
    return data[:-40]


def _garbage(data: bytes) -> bytes:
    return os.urandom(len(data))


def _other_key(data: bytes) -> bytes:  # e.g. another version of clerk
    return data.replace(repr(bot.__version__).encode(), b"'0.0.0'", 1)


def _flipped_byte(data: bytes) -> bytes:  # same length, key intact, text changed
    at = data.index(b"Options:")
    return data[:at] + b"o" + data[at + 1:]


def _key_only(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0] + b"\n"


def _empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize("damage", [_truncated, _garbage, _other_key, _flipped_byte,
                                    _key_only, _empty], ids=lambda f: f.__name__[1:])
def test_a_damaged_or_foreign_cache_file_is_ignored_and_replaced(
        damage: Callable[[bytes], bytes], clerk: Callable[..., Done],
        click_says: Callable[..., Done], cache: Path):
    good = clerk("--help")
    [entry] = entries(cache)
    stored = entry.read_bytes()
    entry.write_bytes(damage(stored))
    again = clerk("--help")
    assert again.code == 0 and not again.served
    assert again.out == good.out == click_says("--help").out
    assert entries(cache) == [entry] and entry.read_bytes() == stored  # replaced
    assert clerk("--help").served


def test_a_file_name_collision_cannot_serve_another_help(clerk: Callable[..., Done],
                                                         cache: Path):
    top = clerk("--help").out
    [top_entry] = entries(cache)
    clerk("plan", "--help")
    [plan_entry] = [e for e in entries(cache) if e != top_entry]
    shutil.copyfile(plan_entry, top_entry)  # as if both questions hashed to one name
    again = clerk("--help")
    assert not again.served and again.out == top


@pytest.mark.parametrize("how", ["a file", "read-only"])
def test_an_unwritable_cache_still_prints_help(how: str, tmp_path: Path,
                                               clerk: Callable[..., Done],
                                               click_says: Callable[..., Done]):
    blocked = tmp_path / "blocked"
    if how == "a file":
        blocked.write_text("not a folder")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        blocked.mkdir(mode=0o500)
    for _ in range(2):
        result = clerk("--help", XDG_CACHE_HOME=str(blocked))
        assert (result.code, result.err) == (0, "") and not result.served
        assert result.out == click_says("--help").out
    assert blocked.is_file() or list(blocked.iterdir()) == []


def test_clerk_help_cache_0_neither_reads_nor_writes(clerk: Callable[..., Done],
                                                     cache: Path):
    off = clerk("--help", CLERK_HELP_CACHE="0")
    assert off.code == 0 and not off.served and entries(cache) == []
    clerk("--help")
    [entry] = entries(cache)
    entry.write_bytes(entry.read_bytes().replace(b"Options:", b"Opinions"))
    assert clerk("--help", CLERK_HELP_CACHE="0").out == off.out  # not even looked at
    assert entries(cache) == [entry]


@pytest.mark.parametrize("args", [
    ("--version",),
    ("--config", "missing", "check"),
    ("check", "--config", "missing"),
    (),
    ("-h", "plan"),
    ("--help", "--help"),
    ("plan", "--help", "extra"),
    ("plan", "--json", "--help"),
    ("-v", "--help"),
], ids=lambda a: " ".join(a) or "nothing")
def test_other_invocations_go_to_click_as_before(
        args: tuple[str, ...], clerk: Callable[..., Done], click_says: Callable[..., Done],
        cache: Path):
    reference = click_says(*args)
    for how in ("module", "script"):
        result = clerk(*args, how=how)
        assert (result.code, result.out, result.err) == (reference.code, reference.out,
                                                          reference.err)
        assert not result.served
    assert entries(cache) == []


@pytest.mark.parametrize("words", [("nosuch",), ("actions", "nosuch")])
def test_an_unknown_command_exits_2_and_is_never_stored(
        words: tuple[str, ...], clerk: Callable[..., Done], click_says: Callable[..., Done],
        cache: Path):
    reference = click_says(*words, "--help")
    assert reference.code == 2 and "No such command 'nosuch'" in reference.err
    for _ in range(2):
        result = clerk(*words, "--help")
        assert (result.code, result.out, result.err) == (2, reference.out, reference.err)
        assert not result.served
    assert entries(cache) == []


def test_a_help_that_exits_non_zero_is_never_stored(tmp_path: Path,
                                                    clerk: Callable[..., Done], cache: Path):
    src = copy_of_clerk(tmp_path)  # a clerk whose command line prints its help, then exits 3
    cli_py = src / "bot" / "cli" / "main.py"
    text = cli_py.read_text(encoding="utf-8")
    call = '    cli(prog_name="clerk")\n'
    assert call in text
    exits_3 = f"    try:\n    {call}    finally:\n        sys.exit(3)\n"
    cli_py.write_text(text.replace(call, exits_3), encoding="utf-8")
    for _ in range(2):
        result = clerk("--help", pythonpath=src)
        assert result.code == 3 and result.out.startswith(b"Usage: clerk") and not result.served
    assert entries(cache) == []


@pytest.mark.parametrize("source", ["bot/__init__.py", "bot/cli/main.py", "bot/cli/common.py",
                                    "bot/cli/records.py", "click/__init__.py"])
def test_a_touched_source_file_is_noticed(source: str, tmp_path: Path,
                                          clerk: Callable[..., Done],
                                          click_says: Callable[..., Done], cache: Path):
    src = copy_of_clerk(tmp_path)  # and of click
    shutil.copytree(Path(click.__file__).parent, src / "click",
                    ignore=shutil.ignore_patterns("__pycache__"))
    first = clerk("actions", "--help", pythonpath=src)
    assert first.code == 0 and not first.served
    assert clerk("actions", "--help", pythonpath=src).served
    path = src / source
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = clerk("actions", "--help", pythonpath=src)
    assert not again.served and again.out == first.out
    assert len(entries(cache)) == 1  # the stale file replaced, not left beside the new one
    assert clerk("actions", "--help", pythonpath=src).served
    assert again.out == click_says("actions", "--help", pythonpath=src).out


def test_an_edited_help_text_is_shown_at_once(tmp_path: Path, clerk: Callable[..., Done]):
    src = copy_of_clerk(tmp_path)
    assert b"(a copy)" not in clerk("--help", pythonpath=src).out
    cli_py = src / "bot" / "cli" / "main.py"
    text = cli_py.read_text(encoding="utf-8")
    old = "clerk: the clerk of a recurring group."
    assert old in text
    cli_py.write_text(text.replace(old, old[:-1] + " (a copy)."), encoding="utf-8")
    edited = clerk("--help", pythonpath=src)
    assert not edited.served and b"clerk: the clerk of a recurring group (a copy)." in edited.out


@pytest.mark.parametrize("name,value", [
    ("LANG", "C"), ("LANGUAGE", "en"), ("LC_ALL", "C.UTF-8"), ("LC_MESSAGES", "C.UTF-8"),
    ("CLERK_CONFIG", "elsewhere"), ("PYTHONIOENCODING", "ascii"),
])
def test_each_setting_that_can_change_the_text_has_its_own_entry(
        name: str, value: str, clerk: Callable[..., Done], click_says: Callable[..., Done]):
    clerk("nudge", "--help")
    first = clerk("nudge", "--help", **{name: value})
    assert not first.served
    assert first.out == click_says("nudge", "--help", **{name: value}).out
    assert "— a subject".encode() in first.out  # click writes UTF-8 even on an ascii stdout
    again = clerk("nudge", "--help", **{name: value})
    assert again.served and again.out == first.out


def test_the_state_url_is_neither_keyed_nor_stored(clerk: Callable[..., Done], cache: Path):
    secret = "postgresql://clerk:s3cret-pw@db.example/clerk"
    first = clerk("plan", "--help", CLERK_STATE=secret)
    assert first.code == 0 and not first.served
    [entry] = entries(cache)
    assert b"s3cret" not in entry.read_bytes()
    assert clerk("plan", "--help", CLERK_STATE="sqlite:///other.sqlite").served


def test_a_config_that_is_a_file_is_left_to_click(tmp_path: Path, clerk: Callable[..., Done],
                                                  click_says: Callable[..., Done]):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    (there / "config").write_text("not a folder")
    clerk("plan", "--help", cwd=here)
    assert clerk("plan", "--help", cwd=here).served
    reference = click_says("plan", "--help", cwd=there)
    assert reference.code == 2 and "is a file" in reference.err
    result = clerk("plan", "--help", cwd=there)
    assert (result.code, result.out, result.err) == (2, reference.out, reference.err)


@pytest.mark.parametrize("how", ["module", "script"])
def test_a_closed_pipe_exits_1_quietly_as_click_does(how: str, cache: Path, tmp_path: Path):
    if how == "script" and not SCRIPT.is_file():
        pytest.skip(f"no console script {SCRIPT.name} next to {sys.executable}")

    def closed_pipe(cmd: list[str]) -> Done:
        read, write = os.pipe()
        os.close(read)
        try:
            return done(subprocess.run(cmd, cwd=tmp_path, stdout=write, stderr=subprocess.PIPE,
                                       env=environment(cache), timeout=60))
        finally:
            os.close(write)

    reference = closed_pipe([*CLICK, "--help"])
    assert (reference.code, reference.err) == (1, "")
    miss = closed_pipe([*LAUNCH[how], "--help"])
    assert (miss.code, miss.err) == (1, "") and entries(cache) == []
    run([*LAUNCH[how], "--help"], cache, tmp_path)  # fills the cache
    hit = closed_pipe([*LAUNCH[how], "--help"])
    assert (hit.code, hit.err) == (1, "") and hit.served


def test_the_launcher_imports_nothing_but_itself():
    code = ("import sys; before = set(sys.modules); import bot.cli.launch; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "['bot', 'bot.cli', 'bot.cli.launch']"
