// Reads one VCALENDAR on stdin with ical.js (Mozilla's parser, as in Thunderbird) and prints
// JSON: {"method", "events": [{"uid", "sequence", "recurrence_id", "start", "end"}]} with
// every time as UTC seconds since the epoch. Run by tests/parsers.py (icaljs_times), one
// process per calendar.
//
// Every VTIMEZONE is registered with ICAL.TimezoneService before any time is read, as
// Thunderbird does. A time whose TZID names no VTIMEZONE of this calendar, or that ical.js
// would treat as floating, is an error (exit 2), never a silent guess.
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

function fail(message) {
  process.stderr.write(`icaljs: ${message}\n`);
  process.exit(2);
}

const text = readFileSync(0, "utf8");
const root = new ICAL.Component(ICAL.parse(text));
if (root.name !== "vcalendar") fail(`top component is ${root.name}, not vcalendar`);

ICAL.TimezoneService.reset();
const tzids = new Set();
for (const vtimezone of root.getAllSubcomponents("vtimezone")) {
  const zone = new ICAL.Timezone(vtimezone);
  ICAL.TimezoneService.register(zone, zone.tzid);
  tzids.add(zone.tzid);
}

function utc(event, name) {
  const prop = event.component.getFirstProperty(name);
  if (!prop) return null;
  const time = prop.getFirstValue();
  const tzid = prop.getParameter("tzid");
  if (tzid) {
    if (!tzids.has(tzid)) fail(`${name} has TZID=${tzid} but the calendar has no such VTIMEZONE`);
    if (!time.zone || time.zone.tzid !== tzid) {
      fail(`${name}: ical.js used zone ${time.zone && time.zone.tzid}, not the VTIMEZONE ${tzid}`);
    }
  } else if (time.zone !== ICAL.Timezone.utcTimezone && !time.isDate) {
    fail(`${name} is a floating time`);
  }
  return time.toUnixTime();
}

const events = root.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  const start = utc(event, "dtstart");
  // DTEND, else DTSTART + DURATION: ical.js's own endDate
  const end = vevent.hasProperty("dtend") ? utc(event, "dtend") : event.endDate.toUnixTime();
  return {
    uid: event.uid,
    sequence: vevent.getFirstPropertyValue("sequence"),
    recurrence_id: utc(event, "recurrence-id"),
    start,
    end,
  };
});

process.stdout.write(
  `${JSON.stringify({ method: root.getFirstPropertyValue("method"), events })}\n`,
);
