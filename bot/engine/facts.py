"""The facts clerk learns and keeps beside the ledger: submissions, RSVPs, bounces, the inbox
log, the roster's changes, the answers clerk owes (the action log, nudges and proposals are
bot/engine/action_facts.py). A mixin of :class:`bot.store.Store`: every write is
atomic and bumps the facts version, so the planner plans again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.engine import prepared
from bot.engine.conflicts import insert_new, upsert
from bot.engine.schema import (
    ACTIONS,
    DELIVERED,
    EVERY,
    bounces,
    calendar_items,
    inbox,
    ledger,
    meta,
    quarantine,
    replies,
    roster,
    rsvps,
    submissions,
)

# a value of the meta table, by its name (the facts version is one): built once
META_VALUE = sa.select(meta.c.value).where(meta.c.name == sa.bindparam("name"))


class Part:
    """What a part of the store (a mixin of :class:`bot.engine.store.Store`) needs of it: its
    engine, a transaction, and the facts version to bump."""

    engine: Engine

    def atomic(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def bump_facts(self, conn: Connection, *units: str,
                   since: int | None = None) -> tuple[int, set[str]]:
        raise NotImplementedError


class Facts(Part):
    """Reading and writing the facts; needs ``update_row`` from the store too."""

    def update_row(self, conn: Connection, key: str, now: datetime, detail: str = "",
                   expect: Sequence[str] = (), **values: Any) -> bool:
        raise NotImplementedError

    def mark_submitted(self, group: str, meeting: str, rule: str, organisation: str,
                       status: str, now: datetime, source: str = "") -> None:
        with self.atomic() as conn:
            if upsert(conn, submissions, {
                    "group_id": group, "meeting_id": meeting, "rule_id": rule,
                    "organisation": organisation, "status": status, "at": now,
                    "source": source},
                    ["group_id", "meeting_id", "rule_id", "organisation"],
                    # a later "nil" does not undo papers already in
                    where=submissions.c.status != "submitted" if status == "nil" else None):
                self.bump_facts(conn, group)

    # --- what the mailbox tells ---------------------------------------------------------

    def meta_value(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(META_VALUE, {"name": name}).scalar()
        return None if value is None else str(value)

    def set_meta(self, name: str, value: str) -> None:
        with self.atomic() as conn:
            upsert(conn, meta, {"name": name, "value": value}, ["name"])

    def note_config_problems(self, lines: Sequence[str], now: datetime) -> None:
        """The config the worker could not load, and since when (kept while the problems
        stay the same): the admin is told once they outlast the settle window."""
        import hashlib

        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12]
        before = self.config_problems()
        if before is not None and before["digest"] == digest:
            return
        self._config_meta(json.dumps({"digest": digest, "since": now.isoformat(),
                                      "problems": list(lines)}))

    def clear_config_problems(self) -> None:
        if self.config_problems() is not None:
            self._config_meta("")

    def config_problems(self) -> dict[str, Any] | None:
        value = self.meta_value("config_problems")
        return json.loads(value) if value else None

    def _config_meta(self, value: str) -> None:
        with self.atomic() as conn:
            upsert(conn, meta, {"name": "config_problems", "value": value}, ["name"])
            self.bump_facts(conn, EVERY)

    def secret(self) -> bytes:
        """The key of the reference tokens in subjects (made once, kept in the store)."""
        value = self.meta_value("token_secret")
        if value is None:  # made once: of two processes making it at once, the first wins
            import secrets

            with self.atomic() as conn:
                insert_new(conn, meta, {"name": "token_secret", "value": secrets.token_hex(32)},
                           ["name"])
            value = self.meta_value("token_secret")
            assert value is not None
        return bytes.fromhex(value)

    def snapshot_held(self, group: str, unit: str) -> dict[str, int]:
        """The last SEQUENCE sent to each person for a meeting or series."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(ledger.c.recipient, sa.func.max(ledger.c.sequence))
                                .where(ledger.c.group_id == group, ledger.c.meeting_id == unit,
                                       ledger.c.sequence.is_not(None),
                                       ledger.c.state.in_(DELIVERED))
                                .group_by(ledger.c.recipient))
            return {email: seq for email, seq in rows}

    def by_message_ids(self, ids: Sequence[str]) -> Any:
        """The ledger row of the first of ``ids`` clerk sent, or None."""
        if not ids:
            return None
        with self.engine.connect() as conn:
            rows = {r.message_id: r for r in conn.execute(
                sa.select(ledger).where(ledger.c.message_id.in_(list(ids))))}
        return next((rows[i] for i in ids if i in rows), None)

    def sent_to(self, email: str, kinds: Sequence[str]) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(ledger).where(
                ledger.c.recipient == email, ledger.c.kind.in_(list(kinds)),
                ledger.c.state == "sent")))

    def record_rsvp(self, group: str, unit: str, rid: str, email: str, partstat: str,
                    comment: str, sequence: int, now: datetime, for_start: str = "") -> None:
        """An answer; ``for_start`` is the start (UTC ISO) it was given for."""
        with self.atomic() as conn:  # the latest answer replaces the one before
            upsert(conn, rsvps, {"group_id": group, "unit": unit, "rid": rid[:40],
                                 "email": email, "partstat": partstat[:20],
                                 "comment": comment, "sequence": sequence, "at": now,
                                 "for_start": for_start[:40]},
                   ["group_id", "unit", "rid", "email"])
            self.bump_facts(conn, group)

    def calendar_rows(self, transport: str, group: str | None = None,
                      unit: str | None = None) -> list[Any]:
        """The calendar items clerk keeps on ``transport``'s server (bot/engine/snapshot.py
        makes them :class:`Part` values)."""
        q = sa.select(calendar_items).where(calendar_items.c.transport == transport)
        if group is not None:
            q = q.where(calendar_items.c.group_id == group)
        if unit is not None:
            q = q.where(calendar_items.c.unit == unit)
        with self.engine.connect() as conn:
            return list(conn.execute(q.order_by(calendar_items.c.part)))

    def save_parts(self, transport: str, group: str, unit: str, parts: Sequence[Any],
                   now: datetime) -> None:
        """Replace what clerk knows of a meeting's calendar items with ``parts``."""
        where = ((calendar_items.c.transport == transport) & (calendar_items.c.group_id == group)
                 & (calendar_items.c.unit == unit))
        with self.atomic() as conn:
            conn.execute(calendar_items.delete().where(where))
            for p in parts:
                conn.execute(calendar_items.insert().values(
                    transport=transport, group_id=group, unit=unit, part=p.part,
                    item_id=p.item_id, change_key=p.change_key,
                    attendees=json.dumps([list(a) for a in p.attendees]), revision=p.revision,
                    cancelled=p.cancelled, updated_at=now))

    def record_bounce(self, email: str, status: str, diagnostic: str, permanent: bool,
                      message_id: str | None, now: datetime, roster_row: str = "") -> Any:
        """Flag ``email`` as bouncing; a permanent bounce of a message clerk sent marks that
        message failed, so the admin hears of it in the next digest. ``roster_row`` is a
        digest of the address's roster row then: it is not mailed again until the row
        changes. Returns the ledger row of the message it returns."""
        row = self.by_message_ids([message_id]) if message_id else None
        with self.atomic() as conn:
            conn.execute(bounces.insert().values(
                email=email[:320], at=now, status=status[:20], diagnostic=diagnostic[:2000],
                permanent=permanent, message_id=(message_id or "")[:300] or None,
                row=roster_row[:64] or None))
            if row is not None and permanent and row.state in ("sent", "sending"):
                self.update_row(conn, row.key, now, f"bounced: {status} {diagnostic}",
                                state="failed", last_error=f"bounced: {status} {diagnostic}",
                                notified_at=None)
            # who bounced is read by every group's plan (an address may be in several)
            self.bump_facts(conn, EVERY)
        return row

    def log_inbox(self, message_id: str | None, sender: str, subject: str, kind: str,
                  handled: bool, detail: str, now: datetime) -> None:
        with self.atomic() as conn:
            conn.execute(inbox.insert().values(  # header text is the sender's: cut to fit
                message_id=(message_id or "")[:300] or None, at=now, sender=sender[:320],
                subject=subject[:500], kind=kind, handled=handled, detail=detail[:2000]))

    def keep_back(self, values: dict[str, Any], now: datetime) -> int:
        """Record an attachment kept back from the packs: ``group_id``, ``meeting_id``,
        ``organisation``, ``sender``, ``message_id``, ``name``, ``path`` (None: not kept),
        ``size``, ``reason``. Returns its id."""
        cut = {"organisation": 300, "sender": 320, "message_id": 300}
        row = {k: v[:cut[k]] if k in cut and isinstance(v, str) else v
               for k, v in values.items()}
        which = (row["group_id"], row["meeting_id"], row["sender"], row["name"],
                 str(row["size"]), row["reason"])
        with self.atomic() as conn:
            return self._once(conn, quarantine, {**row, "at": now},
                              _digest(row["message_id"], *which), row["group_id"])

    def _once(self, conn: Connection, table: sa.Table, values: dict[str, Any],
              digest: str | None, group: str) -> int:
        """Insert ``values`` (and bump the facts) unless a row of the same ``digest`` is
        there, which another worker may be inserting right now; the row's id."""
        if digest is None:
            inserted = conn.execute(table.insert().values(**values)).inserted_primary_key
            assert inserted is not None
            self.bump_facts(conn, group)
            return int(inserted[0])
        if insert_new(conn, table, {**values, "digest": digest}, ["digest"]):
            self.bump_facts(conn, group)
        return int(conn.execute(sa.select(table.c.id).where(table.c.digest == digest)
                                ).scalar_one())

    def quarantined(self, group: str | None = None, *,
                    unreported: bool = False) -> list[Any]:
        """What was kept back, oldest first; ``unreported``: not yet in an admin's digest."""
        q = sa.select(quarantine).order_by(quarantine.c.id)
        if group:
            q = q.where(quarantine.c.group_id == group)
        if unreported:
            q = q.where(quarantine.c.notified_at.is_(None))
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def mark_reported(self, conn: Connection, ids: Sequence[int], now: datetime) -> None:
        """The admin's digest told of these quarantined attachments."""
        if ids:
            where = quarantine.c.id.in_(list(ids))
            conn.execute(quarantine.update().where(where).values(notified_at=now))
            self.bump_facts(conn, *conn.execute(
                sa.select(quarantine.c.group_id).where(where).distinct()).scalars())

    def note_roster(self, groups: dict[str, dict[str, str]], now: datetime) -> int:
        """Record the rosters as they are (group → email → row digest): a row that is new,
        changed or gone since the last look is stamped ``now``. Returns how many were."""
        changed = 0
        noted: list[str] = []  # the groups whose roster changed
        with self.atomic() as conn:
            for group, rows in groups.items():
                before = changed
                seen = {r.email: r.row for r in conn.execute(
                    sa.select(roster.c.email, roster.c.row).where(roster.c.group_id == group))}
                new = [(group, email, row, now) for email, row in rows.items()
                       if email not in seen]
                # at once (another worker may note them at the same time): a first start
                # notes every group's whole roster
                changed += prepared.insert_rows(
                    conn.dialect.name, ("group_id", "email", "row", "changed_at"), roster,
                    ("group_id", "email")).many(conn, new, by_position=True)
                for email, row in rows.items():
                    if email not in seen:
                        continue
                    if seen[email] != row:
                        conn.execute(roster.update().where(
                            (roster.c.group_id == group) & (roster.c.email == email)
                        ).values(row=row, changed_at=now))
                    else:
                        continue
                    changed += 1
                for email in (e for e, row in seen.items() if row and e not in rows):
                    conn.execute(roster.update().where(
                        (roster.c.group_id == group) & (roster.c.email == email)
                    ).values(row="", changed_at=now))
                    changed += 1
                if changed > before:
                    noted.append(group)
            if changed:  # (the owners' digests read the rosters too)
                self.bump_facts(conn, ACTIONS, *noted)
        return changed

    def owe_reply(self, group: str, email: str, name: str, subject: str, body: str,
                  in_reply_to: str | None, now: datetime, about: str = "") -> int:
        """An answer to send to ``email`` (the planner makes it a message, sent once);
        ``about`` says what it answers, for the admin's desk (bot/engine/desk.py)."""
        email, answers, subject = email[:320], (in_reply_to or "")[:300] or None, subject[:300]
        values = {"group_id": group, "email": email, "name": name[:300], "subject": subject,
                  "body": body, "in_reply_to": answers, "at": now, "about": about[:100]}
        with self.atomic() as conn:
            return self._once(conn, replies, values,
                              _digest(answers, group, email, subject, body, about[:100]), group)

    def reply_rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(replies).order_by(replies.c.id)))

    def handled_before(self, message_id: str, sender: str) -> bool:
        """Whether a message with this Message-ID from this sender was read and applied."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(inbox.c.id).where(
                inbox.c.message_id == message_id[:300], inbox.c.sender == sender[:320],
                inbox.c.handled.is_(True)).limit(1)).first() is not None

    def inbox_log(self, handled: bool | None = None) -> list[Any]:
        q = sa.select(inbox).order_by(inbox.c.id)
        if handled is not None:
            q = q.where(inbox.c.handled == handled)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def bouncing(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(bounces).order_by(bounces.c.id)))


def _digest(message_id: str | None, *what: str) -> str | None:
    """What a fact drawn from the message ``message_id`` is, hashed (None without one)."""
    if not message_id:
        return None
    import hashlib

    return hashlib.sha256("\x00".join((message_id, *what)).encode()).hexdigest()
