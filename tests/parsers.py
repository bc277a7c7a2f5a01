"""Independent iCalendar parsers and a real CalDAV server, for any test of generated invites.

Each ``*_times(data)`` reads one VCALENDAR (``bytes``, or a path as ``str``/``PathLike``) and
returns a :class:`Parsed`: METHOD plus, for each VEVENT, UID, SEQUENCE and the UTC DTSTART and
DTEND, keyed by the UTC RECURRENCE-ID (``None`` for a VEVENT without one).  Equal results from
different parsers compare equal (``==``), so a test can assert on all of them at once.

Every parser must read the times through the calendar's own VTIMEZONE, never through a zone
database of its own that happens to know the TZID (which would hide a wrong VTIMEZONE: see
REAL-PARTS.md on icalendar's RDATE zones).  A time whose TZID names no VTIMEZONE of the
calendar, or that a parser resolved elsewhere, raises :class:`ParserError`:

* :func:`icalendar_times` -- in process; icalendar itself resolves a known TZID with zoneinfo,
  so the harness re-reads each wall time in ``Timezone.to_tz(lookup_tzid=False)`` built from
  the calendar's VTIMEZONE.
* :func:`vobject_times` -- a fresh ``python -c`` process per calendar, because vobject
  registers TZIDs process-wide and reuses the first VTIMEZONE it saw for a name; the script
  also rejects a time whose tzinfo is not vobject's ``tzical`` zone from this calendar
  (vobject silently falls back to pytz for an unknown TZID).
* :func:`icaljs_times` -- ical.js (Mozilla's, as in Thunderbird) through ``node
  tests/js/times.mjs``, which registers every VTIMEZONE with ``ICAL.TimezoneService`` before
  reading any time; one process per calendar.
* :func:`libical_times` and :func:`libical_check` -- Debian's libical 3 through its GObject
  bindings (``gi.require_version("ICalGLib", "3.0")``, package gir1.2-ical-3.0).  Why not the
  C library or the ``ICal`` typelib: the ``ICal-3.0`` typelib lacks the parser
  (``icalparser_parse_string`` is not introspectable), while ``ICalGLib``'s
  ``Component.new_from_string`` and ``restriction_check`` wrap ``icalparser`` and
  ``icalrestriction_check`` directly, with no compiler needed at setup.  Debian's python3-gi
  is built for Debian's ``/usr/bin/python3`` only, so the script runs in a subprocess of that
  interpreter, never in the venv.  ``icalrestriction_check`` applies RFC 5546's per-METHOD
  table (a REQUEST without ORGANIZER fails) and adds an X-LIC-ERROR property for each
  violation; :func:`libical_check` returns those texts, together with any X-LIC-ERROR the
  parser added, so an empty list means OK.

Radicale: :func:`start_radicale` runs ``python -m radicale`` (the venv's, so it needs
``radicale`` in the test extra) on a free loopback port with no auth, waits until it answers,
and :meth:`Radicale.put` PUTs a calendar object, asserting 201 or 204.  A PUT into a
collection that does not exist is refused (409), so :meth:`Radicale.mkcalendar` creates one
with MKCALENDAR first.  Radicale 3.9 accepts an object with ``METHOD:REQUEST`` or
``METHOD:CANCEL`` and stores it verbatim, so nothing is stripped.  Objects are stored at an
href derived from the UID: CalDAV keeps one resource per UID (a second href with the same UID
is a 409 ``no-uid-conflict``), so an update or a cancel of the same UID replaces the object
(204).  A lone RECURRENCE-ID override is accepted; several overrides in one object need their
master VEVENT too (else 400 "Main component missing").  The fixtures
:func:`radicale` (session) and :func:`radicale_put` (a fresh calendar per test) are made
available to ``tests/e2e`` by ``tests/e2e/conftest.py``.

Nothing here skips: a missing tool raises :class:`ToolMissing` naming ``tests/setup.sh``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
SYSTEM_PYTHON = "/usr/bin/python3"
SETUP = "run `bash tests/setup.sh` as root (make test must run it first)"
TIMEOUT = 60  # seconds for one parser process

Source = bytes | str | os.PathLike[str]


class ParserError(Exception):
    """A parser rejected the calendar, or resolved a time other than through its VTIMEZONE."""


class ToolMissing(RuntimeError):
    """A parser or server is not installed: a failure, never a skip."""


@dataclass(frozen=True)
class EventTimes:
    uid: str
    sequence: int | None  # None when the VEVENT has no SEQUENCE
    start: datetime  # UTC
    end: datetime  # UTC


@dataclass(frozen=True)
class Parsed:
    method: str | None
    events: dict[datetime | None, EventTimes]  # key: UTC RECURRENCE-ID, None if absent


def _bytes(data: Source) -> bytes:
    return data if isinstance(data, bytes) else Path(data).read_bytes()


def _utc(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _parsed(parser: str, method: str | None, events: list[dict[str, Any]]) -> Parsed:
    """Build a :class:`Parsed` from the JSON shape every parser script prints."""
    keyed: dict[datetime | None, EventTimes] = {}
    for event in events:
        key = _utc(event["recurrence_id"])
        if key in keyed:
            raise ParserError(f"{parser}: two VEVENTs with RECURRENCE-ID {key}")
        start, end = _utc(event["start"]), _utc(event["end"])
        if start is None or end is None:
            raise ParserError(f"{parser}: a VEVENT without DTSTART or end: {event}")
        sequence = event["sequence"]
        keyed[key] = EventTimes(
            str(event["uid"]), None if sequence is None else int(sequence), start, end
        )
    return Parsed(None if method is None else str(method), keyed)


def _run(parser: str, argv: list[str], data: bytes, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            argv, input=data, capture_output=True, timeout=TIMEOUT, cwd=cwd, check=False
        )
    except FileNotFoundError as exc:
        raise ToolMissing(f"{parser}: {argv[0]} not found; {SETUP}") from exc
    stderr = done.stderr.decode(errors="replace").strip()
    if done.returncode == 3:  # the scripts' "cannot import the parser"
        raise ToolMissing(f"{parser}: {stderr}; {SETUP}")
    if done.returncode != 0:
        raise ParserError(f"{parser} failed (exit {done.returncode}): {stderr}")
    return done.stdout.decode()


# --- icalendar (in process) -----------------------------------------------------------


def icalendar_times(data: Source) -> Parsed:
    """icalendar, with each TZID read through the calendar's own VTIMEZONE."""
    try:
        cal = Calendar.from_ical(_bytes(data))
    except ValueError as exc:
        raise ParserError(f"icalendar: {exc}") from exc
    zones: dict[str, tzinfo] = {
        str(vtz["TZID"]): vtz.to_tz(lookup_tzid=False) for vtz in cal.walk("VTIMEZONE")
    }

    def utc(event: Any, name: str) -> datetime | None:
        prop = event.get(name)
        if prop is None:
            return None
        value = prop.dt
        if not isinstance(value, datetime):  # a DATE: midnight UTC, as the others do
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        tzid = prop.params.get("TZID")
        if tzid is not None:
            if tzid not in zones:
                raise ParserError(f"icalendar: {name} has TZID={tzid}, no such VTIMEZONE")
            value = value.replace(tzinfo=None).replace(tzinfo=zones[tzid])
        elif value.tzinfo is None:
            raise ParserError(f"icalendar: {name} is a floating time")
        return value.astimezone(UTC)

    events = []
    for event in cal.walk("VEVENT"):
        start = utc(event, "DTSTART")
        end = utc(event, "DTEND")
        if end is None and start is not None and "DURATION" in event:
            end = start + event["DURATION"].dt
        seq = event.get("SEQUENCE")
        events.append(
            {
                "uid": event.get("UID"),
                "sequence": None if seq is None else int(seq),
                "recurrence_id": _timestamp(utc(event, "RECURRENCE-ID")),
                "start": _timestamp(start),
                "end": _timestamp(end),
            }
        )
    method = cal.get("METHOD")
    return _parsed("icalendar", None if method is None else str(method), events)


def _timestamp(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


# --- vobject (a fresh process per calendar) -------------------------------------------

_VOBJECT = textwrap.dedent(
    """
    import json, sys
    from datetime import date, datetime, timezone
    try:
        import vobject
    except ImportError as exc:
        print(f"vobject cannot be imported ({exc})", file=sys.stderr)
        sys.exit(3)

    def fail(message):
        print(f"vobject: {message}", file=sys.stderr)
        sys.exit(2)

    cal = vobject.readOne(sys.stdin.buffer.read().decode("utf-8"))
    tzids = {vtz.tzid.value for vtz in getattr(cal, "vtimezone_list", [])}

    def utc(event, name):
        prop = event.contents.get(name, [None])[0]
        if prop is None:
            return None
        value = prop.value
        if not isinstance(value, datetime):
            return int(datetime(value.year, value.month, value.day,
                                tzinfo=timezone.utc).timestamp())
        tzid = (prop.params.get("X-VOBJ-ORIGINAL-TZID") or prop.params.get("TZID") or [None])[0]
        if tzid is not None:
            if tzid not in tzids:
                fail(f"{name} has TZID={tzid}, no such VTIMEZONE (vobject used {value.tzinfo!r})")
            if type(value.tzinfo).__name__ != "_tzicalvtz":
                fail(f"{name}: vobject used {value.tzinfo!r}, not the calendar's VTIMEZONE")
        elif value.tzinfo is None:
            fail(f"{name} is a floating time")
        return int(value.timestamp())

    events = []
    for event in getattr(cal, "vevent_list", []):
        start, end = utc(event, "dtstart"), utc(event, "dtend")
        if end is None and start is not None and "duration" in event.contents:
            end = start + int(event.duration.value.total_seconds())
        seq = event.contents.get("sequence")
        events.append({
            "uid": event.uid.value,
            "sequence": None if seq is None else int(seq[0].value),
            "recurrence_id": utc(event, "recurrence-id"),
            "start": start,
            "end": end,
        })
    method = cal.contents.get("method")
    print(json.dumps({"method": method and method[0].value, "events": events}))
    """
)


def vobject_times(data: Source) -> Parsed:
    """vobject in a fresh process of this Python (vobject caches TZIDs process-wide)."""
    out = json.loads(_run("vobject", [sys.executable, "-c", _VOBJECT], _bytes(data)))
    return _parsed("vobject", out["method"], out["events"])


# --- ical.js (node) -------------------------------------------------------------------


@functools.cache
def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ToolMissing(f"ical.js: node is not on PATH; {SETUP}")
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/ical.js"]["version"]
    installed = JS_DIR / "node_modules" / "ical.js" / "package.json"
    if not installed.is_file():
        raise ToolMissing(f"ical.js is not installed in {JS_DIR}/node_modules; {SETUP}")
    have = json.loads(installed.read_text())["version"]
    if have != wanted:
        raise ToolMissing(f"ical.js {have} installed, package-lock.json pins {wanted}; {SETUP}")
    return node


def icaljs_times(data: Source) -> Parsed:
    """ical.js through ``node tests/js/times.mjs`` (one process per calendar)."""
    out = json.loads(_run("ical.js", [_node(), str(JS_DIR / "times.mjs")], _bytes(data), JS_DIR))
    return _parsed("ical.js", out["method"], out["events"])


# --- libical (Debian's, through /usr/bin/python3 and python3-gi) ----------------------

_LIBICAL = textwrap.dedent(
    """
    import json, sys
    try:
        import gi
        gi.require_version("ICalGLib", "3.0")
        from gi.repository import ICalGLib as I
    except (ImportError, ValueError) as exc:
        print(f"libical's GObject bindings cannot be loaded ({exc}): "
              "Debian packages python3-gi and gir1.2-ical-3.0 are needed", file=sys.stderr)
        sys.exit(3)

    def fail(message):
        print(f"libical: {message}", file=sys.stderr)
        sys.exit(2)

    def errors(comp):
        found = []
        prop = comp.get_first_property(I.PropertyKind.XLICERROR_PROPERTY)
        while prop is not None:
            found.append(f"{I.Component.kind_to_string(comp.isa())}: {prop.get_xlicerror()}")
            prop = comp.get_next_property(I.PropertyKind.XLICERROR_PROPERTY)
        sub = comp.get_first_component(I.ComponentKind.ANY_COMPONENT)
        while sub is not None:
            found += errors(sub)
            sub = comp.get_next_component(I.ComponentKind.ANY_COMPONENT)
        return found

    comp = I.Component.new_from_string(sys.stdin.buffer.read().decode("utf-8"))
    if comp is None or comp.isa() != I.ComponentKind.VCALENDAR_COMPONENT:
        fail("no VCALENDAR could be parsed")
    KINDS = {
        "DTSTART": I.PropertyKind.DTSTART_PROPERTY,
        "DTEND": I.PropertyKind.DTEND_PROPERTY,
        "RECURRENCE-ID": I.PropertyKind.RECURRENCEID_PROPERTY,
    }

    def utc(event, name):
        prop = event.get_first_property(KINDS[name])
        if prop is None:
            return None
        value = prop.get_value().get_datetime()
        param = prop.get_first_parameter(I.ParameterKind.TZID_PARAMETER)
        zone = None
        if param is not None:
            tzid = param.get_tzid()
            zone = comp.get_timezone(tzid)  # the calendar's VTIMEZONE, not a built-in zone
            if zone is None:
                fail(f"{name} has TZID={tzid}, no such VTIMEZONE")
        elif not value.is_utc() and not value.is_date():
            fail(f"{name} is a floating time")
        return value.as_timet_with_zone(zone)  # zone=None: the value is UTC

    events = []
    event = comp.get_first_component(I.ComponentKind.VEVENT_COMPONENT)
    while event is not None:
        start, end = utc(event, "DTSTART"), utc(event, "DTEND")
        if end is None and start is not None and event.get_first_property(
                I.PropertyKind.DURATION_PROPERTY) is not None:
            end = start + event.get_duration().as_int()
        seq = event.get_first_property(I.PropertyKind.SEQUENCE_PROPERTY)
        events.append({
            "uid": event.get_uid(),
            "sequence": None if seq is None else seq.get_sequence(),
            "recurrence_id": utc(event, "RECURRENCE-ID"),
            "start": start,
            "end": end,
        })
        event = comp.get_next_component(I.ComponentKind.VEVENT_COMPONENT)
    method = comp.get_first_property(I.PropertyKind.METHOD_PROPERTY)

    problems = errors(comp)  # what the parser itself found
    passed = I.restriction_check(comp)  # RFC 5546: adds an X-LIC-ERROR per violation
    problems = errors(comp)
    if not passed and not problems:
        problems = ["icalrestriction_check failed without saying why"]
    print(json.dumps({
        "method": None if method is None else method.get_value_as_string(),
        "events": events,
        "problems": problems,
    }))
    """
)


@functools.lru_cache(maxsize=64)
def _libical(data: bytes) -> dict[str, Any]:
    if not Path(SYSTEM_PYTHON).is_file():
        raise ToolMissing(f"libical: {SYSTEM_PYTHON} (Debian's python3) is missing; {SETUP}")
    out: dict[str, Any] = json.loads(_run("libical", [SYSTEM_PYTHON, "-c", _LIBICAL], data))
    return out


def libical_times(data: Source) -> Parsed:
    """libical's times, each wall time converted in the calendar's own VTIMEZONE."""
    out = _libical(_bytes(data))
    return _parsed("libical", out["method"], out["events"])


def libical_check(data: Source) -> list[str]:
    """libical's problems with the calendar: parse errors and ``icalrestriction_check``'s
    RFC 5546 violations for its METHOD.  Empty means OK."""
    problems: list[str] = _libical(_bytes(data))["problems"]
    return problems


PARSERS: dict[str, Callable[[Source], Parsed]] = {
    "icalendar": icalendar_times,
    "vobject": vobject_times,
    "ical.js": icaljs_times,
    "libical": libical_times,
}


def all_times(data: Source) -> dict[str, Parsed]:
    """Every parser's reading of one calendar; the subprocesses run side by side."""
    raw = _bytes(data)
    with ThreadPoolExecutor(max_workers=len(PARSERS)) as pool:
        futures = {name: pool.submit(parse, raw) for name, parse in PARSERS.items()}
        return {name: future.result() for name, future in futures.items()}


# --- Radicale -------------------------------------------------------------------------

USER = "clerk"  # Radicale needs some user name even with --auth-type none


@dataclass
class Radicale:
    host: str
    port: int
    log: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": "Basic " + base64.b64encode(f"{USER}:x".encode()).decode()}
        if content_type:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def mkcalendar(self, name: str | None = None) -> str:
        """Create a calendar collection; returns its path (``/clerk/NAME/``)."""
        path = f"/{USER}/{name or uuid.uuid4().hex}/"
        status, body = self.request("MKCALENDAR", path)
        assert status == 201, f"MKCALENDAR {path}: {status} {body!r}\n{self.log_tail()}"
        return path

    def put(self, data: bytes, *, calendar: str, name: str | None = None) -> int:
        """PUT one calendar object; asserts 201 (created) or 204 (replaced).

        The default name is derived from the UID, so a later message for the same UID
        (update, cancel) replaces the object, as CalDAV requires."""
        if name is None:
            uids = {str(event["UID"]) for event in Calendar.from_ical(data).walk("VEVENT")}
            assert len(uids) == 1, f"one UID per CalDAV object, got {sorted(uids)}"
            name = object_name(uids.pop())
        path = calendar + name
        status, body = self.request("PUT", path, data, "text/calendar; charset=utf-8")
        assert status in (201, 204), f"PUT {path}: {status} {body!r}\n{self.log_tail()}"
        return status

    def get(self, path: str) -> bytes:
        status, body = self.request("GET", path)
        assert status == 200, f"GET {path}: {status} {body!r}"
        return body


def object_name(uid: str) -> str:
    """The name under which :meth:`Radicale.put` stores the object with this UID."""
    return hashlib.sha256(uid.encode()).hexdigest()[:24] + ".ics"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def start_radicale(folder: Path, wait: float = 30) -> Iterator[Radicale]:
    """Run Radicale on loopback with its storage and log (``radicale.log``) in ``folder``."""
    try:
        import radicale  # noqa: F401  (only to fail clearly)
    except ImportError as exc:
        raise ToolMissing(
            f"radicale is not installed in {sys.executable}: pip install 'radicale>=3.2'"
        ) from exc
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "radicale.log"
    for _attempt in range(3):  # another process may take the free port first
        server = Radicale("127.0.0.1", _free_port(), log_path)
        argv = [
            sys.executable, "-m", "radicale",
            "--config",  # no value: read no config file of this machine
            "--server-hosts", f"{server.host}:{server.port}",
            "--auth-type", "none",
            "--auth-delay", "0",
            "--storage-filesystem-folder", str(folder / "collections"),
        ]  # fmt: skip
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            if _answers(server, proc, wait):
                yield server
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    raise AssertionError(f"Radicale did not start:\n{server.log_tail()}")


def _answers(server: Radicale, proc: subprocess.Popen[bytes], wait: float) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            status, _ = server.request("GET", "/")
        except OSError:
            time.sleep(0.05)
            continue
        if status in (200, 302):
            return True
        raise AssertionError(f"Radicale answered {status}:\n{server.log_tail()}")
    raise AssertionError(f"Radicale did not answer within {wait} s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """A Radicale server on loopback for the whole session."""
    with start_radicale(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@dataclass
class CalendarPut:
    """``put(ics_bytes, name=None)`` into one calendar collection; asserts 201/204."""

    server: Radicale
    calendar: str  # the collection's path

    def __call__(self, data: bytes, name: str | None = None) -> int:
        return self.server.put(data, calendar=self.calendar, name=name)

    def get(self, uid: str) -> bytes:
        """The stored object for ``uid`` (as :meth:`Radicale.put` named it)."""
        return self.server.get(self.calendar + object_name(uid))


@pytest.fixture
def radicale_put(radicale: Radicale) -> CalendarPut:
    """PUT into a calendar collection of this test's own on the session's Radicale."""
    return CalendarPut(radicale, radicale.mkcalendar())
