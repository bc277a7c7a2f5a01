"""What clerk does with each message in its mailbox, once bot/listen/replies.py has read it.

- An RSVP (iMIP REPLY) becomes that member's answer for the meeting, or for one meeting of a
  series; a reply older than the SEQUENCE last sent to that person is ignored (RFC 5546 2.1.5).
- An answer to a request for information or its chaser — found by In-Reply-To/References,
  or by the ``[#token]`` in its subject (an HMAC of the ledger key, so it cannot be guessed) —
  becomes a submission for the sender's organisation: "nil return" counts; attachments of an
  allowed type are saved to the meeting's papers folder under safe names, the others
  quarantined for the admin (bot/engine/papers.py). Chasers stop for that organisation.
- A bounce flags the address and fails the message it returns, so the admin hears of it.
- An auto-reply is filed and never taken as an answer.
- Anything else goes to the unprocessed folder for the admin, with the reason logged; so
  does a message larger than ``max_message``, unread (the mailbox may not even fetch it).

Every message clerk reads is logged in the ``inbox`` table, handled or not.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.errors import StoreError, UsageError
from bot.domain.model import Config, Group, Member
from bot.domain.tokens import ANSWERABLE, check_token
from bot.engine import action_log, snapshot
from bot.engine.desk import Desk
from bot.engine.papers import Papers, Sender
from bot.engine.store import Store
from bot.listen import commands, replies
from bot.listen.answers import apologies
from bot.listen.authn import Trust
from bot.listen.replies import Answer, Incoming
from bot.plan import actions
from bot.plan.calendar import OWNED_BY_SERVER
from bot.plan.minutes import approval_key
from bot.render.email import invite_uid
from bot.transports.base import Oversized

log = logging.getLogger("clerk")
ACTION_COMMANDS = ("DONE", "NEW DATE", "UPDATE")
TOKEN_LIFE = timedelta(days=60)  # an action chaser's [#token] works this long


@dataclass(frozen=True)
class Outcome:
    handled: bool  # False: it goes to the unprocessed folder
    detail: str


class Inbox:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.desk = Desk(config, store)
        self.uids: dict[str, tuple[Group, str]] = {}
        # a meeting the server made has the server's UID: its answers are found by start
        self.starts: dict[str, list[tuple[Group, str]]] = {}
        for group in config.groups:
            units = [m.id for m in group.meetings if not m.series] + [s.id for s in group.series]
            for unit in units:
                self.uids[invite_uid(group, unit)] = (group, unit)
            for m in group.meetings:
                for at in {m.start, m.recurrence_id or m.start}:
                    self.starts.setdefault(at.astimezone(UTC).isoformat(), []).append(
                        (group, m.series or m.id))

    def apply(self, incoming: Incoming, now: datetime) -> Outcome:
        if incoming.message_id and self.store.handled_before(incoming.message_id,
                                                            incoming.sender):
            outcome = Outcome(True, f"already applied: {incoming.message_id} came again (a "
                                    "second delivery); nothing done twice")
        else:
            outcome = self._apply(incoming, now)
        self.store.log_inbox(incoming.message_id, incoming.sender, incoming.subject,
                             incoming.kind, outcome.handled, outcome.detail, now)
        log.info("inbox: %s from %s: %s", incoming.kind, incoming.sender or "?",
                 outcome.detail)
        return outcome

    def _apply(self, incoming: Incoming, now: datetime) -> Outcome:
        if incoming.kind == "rsvp":
            return self._rsvps(incoming, now)
        if incoming.kind == "bounce" and incoming.bounce is not None:
            return self._bounce(incoming.bounce, now)
        if incoming.kind == "auto_reply":
            return Outcome(True, f"automatic reply ({incoming.reason}); not an answer")
        if incoming.kind == "answer" and incoming.answer is not None:
            return self._answer(incoming, incoming.answer, now)
        return Outcome(False, incoming.reason or "not something clerk can use")

    def _bounce(self, b: Any, now: datetime) -> Outcome:
        """A bounce counts only for a message clerk sent, to the address it names: its
        Message-ID is an HMAC under the install's secret, so nobody else can name one."""
        row = self.store.by_message_ids([b.original_message_id]) \
            if b.original_message_id else None
        if row is None:
            return Outcome(False, "a bounce of a message clerk did not send (or that it cannot "
                                  "tell): not applied")
        named = [e for e in b.recipients if e == row.recipient]
        if not named:
            return Outcome(False, f"a bounce for {', '.join(b.recipients)}, but that message "
                                  f"went to {row.recipient}: not applied")
        group = next((g for g in self.config.groups if g.id == row.group_id), None)
        member = _member(group, row.recipient) if group is not None else None
        self.store.record_bounce(row.recipient, b.status, b.diagnostic, b.permanent,
                                 b.original_message_id, now, member.row if member else "")
        if b.permanent:
            return Outcome(True, f"{row.recipient} bouncing ({b.status}): not mailed again "
                                 "until its row in the roster changes")
        return Outcome(True, f"{row.recipient} delayed ({b.status})")

    def _rsvps(self, incoming: Incoming, now: datetime) -> Outcome:
        if not incoming.authenticated:
            return Outcome(False, f"a calendar answer, not applied: {incoming.auth}")
        done: list[str] = []
        refused: list[str] = []  # what was not applied, and why
        for r in incoming.rsvps:
            if r.attendee != incoming.sender:  # RFC 6047 section 3: a spoofed attendee
                refused.append(f"{incoming.sender} answered for {r.attendee}: not applied, "
                               "only their own answer counts")
                continue
            found = self.uids.get(r.uid)
            server = found is None and self.config.settings.transport in OWNED_BY_SERVER
            if server:  # its SEQUENCE is the server's count, not clerk's
                found = self._by_start(r)
            if found is None:
                refused.append(f"a reply for an unknown meeting (UID {r.uid})")
                continue
            group, unit = found
            member = _member(group, r.attendee)
            if member is None:
                refused.append(f"{r.attendee} answered but is not on the roster of {group.id}")
                continue
            last = self.store.snapshot_held(group.id, unit).get(member.email)
            if last is not None and r.sequence < last and not server:
                done.append(f"ignored an old reply (SEQUENCE {r.sequence} < {last})")
                continue
            self.store.record_rsvp(group.id, unit, r.recurrence_id or "", member.email,
                                   r.partstat, r.comment, r.sequence, now,
                                   for_start=r.start or "")
            done.append(f"{member.email} {r.partstat.lower()} {unit}"
                        + (f" ({r.comment})" if r.comment else ""))
        return Outcome(bool(done), "; ".join(refused + done))

    def _by_start(self, r: Any) -> tuple[Group, str] | None:
        """The meeting a server made (transports exchange, graph) that ``r`` answers: the
        one of the attendee's group starting when the answer says (its reason is only
        here; the calendar gives the answer alone)."""
        for group, unit in self.starts.get(r.start or "", []):
            if _member(group, r.attendee) is not None:
                return group, unit
        return None

    def _answer(self, incoming: Incoming, answer: Answer, now: datetime) -> Outcome:
        if not incoming.authenticated:
            said = commands.parse(answer.text).commands
            if said and self.desk.commander(incoming.sender):
                return Outcome(False, f"{len(said)} command(s) in the name of "
                                      f"{incoming.sender}, not obeyed: {incoming.auth}")
            return Outcome(False, f"not applied: {incoming.auth}")
        ids = [i for i in (incoming.in_reply_to, *incoming.references) if i]
        referenced = self.store.by_message_ids(ids) if ids else None
        if self.desk.wants(incoming, referenced):
            done = self.desk.apply(incoming, referenced, now)
            return Outcome(done.handled, done.detail)
        if answer.command == "AGENDA":
            return self._proposal(incoming, answer, now)
        row = self._answered_row(incoming)
        if row is None:
            ids = [i for i in (incoming.in_reply_to, *incoming.references) if i]
            other = self.store.by_message_ids(ids)
            if other is None:
                if commands.parse(answer.text).commands:
                    return Outcome(False, f"commands from {incoming.sender}, who may not give "
                                          "them (only a group's admin may): nothing done")
                return Outcome(False, "an answer to nothing clerk sent (no reference, no "
                                      "token)")
            return self._reply_to(incoming, answer, other, now)
        if row.group_id not in {g.id for g in self.config.groups}:
            return Outcome(False, f"an answer about group {row.group_id}, which is no longer "
                                  "in the config")
        group = self.config.group(row.group_id)
        meeting = next((m for m in group.meetings if m.id == row.meeting_id), None)
        if row.kind in ("request", "chaser") and (meeting is None or meeting.start <= now):
            return Outcome(False, f"an answer to the request for {row.meeting_id}, which is "
                                  "over: not applied")
        if row.kind == "action_chaser":
            return self._action_reply(incoming, answer, row, group, now)
        if row.kind == "approval_request":
            return self._approval(incoming, answer, row, group, now)
        member = _member(group, incoming.sender)
        if member is None:
            return Outcome(False, f"{incoming.sender} is not on the roster of {group.id}")
        rule = next((r for r in group.rules if r.id == row.rule_id), None)
        request = rule.chases if rule is not None and rule.kind == "chaser" else row.rule_id
        nil = answer.command == "NIL" and not answer.attachments
        filed = Papers(self.config.settings, self.store).file(
            group.id, row.meeting_id, Sender(member, incoming), answer, now)
        self.store.mark_submitted(group.id, row.meeting_id, request or row.rule_id,
                                  member.organisation, "nil" if nil else "submitted", now,
                                  source=f"{incoming.sender} {incoming.message_id or ''}")
        what = "a nil return" if nil else f"a submission ({len(filed.saved)} paper(s))"
        return Outcome(True, f"{what} from {member.organisation} for {row.meeting_id}"
                             f"{filed.note()}")

    def _reply_to(self, incoming: Incoming, answer: Answer, row: Any,
                  now: datetime) -> Outcome:
        """A reply to a message that asks for no answer: apologies, when it says so."""
        group = next((g for g in self.config.groups if g.id == row.group_id), None)
        what = {"invitation": "invitation", "pack": "agenda pack"}.get(row.kind)
        if group is None or what is None:
            return Outcome(False, f"a reply to the {row.kind.replace('_', ' ')} of "
                                  f"{row.meeting_id}: clerk does not act on these; for the "
                                  "admin to read")
        member = _member(group, incoming.sender)
        if member is None:
            return Outcome(False, f"{incoming.sender} is not on the roster of {group.id}")
        if apologies(answer.text) is None:
            return Outcome(False, f"a reply to the {what} of {row.meeting_id} from "
                                  f"{member.name} that does not read as apologies: for the "
                                  "admin to read")
        meeting = next((m for m in group.meetings if m.id == row.meeting_id), None)
        unit = meeting.series or meeting.id if meeting is not None else row.meeting_id
        rid = meeting.recurrence_id.astimezone(UTC).isoformat() \
            if meeting is not None and meeting.recurrence_id is not None else ""
        reason = " ".join(answer.text.split())[:300]
        self.store.record_rsvp(group.id, unit, rid, member.email, "DECLINED", reason,
                               row.sequence if row.sequence is not None else 0, now,
                               for_start=meeting.start.astimezone(UTC).isoformat()
                               if meeting is not None else "")
        return Outcome(True, f"{member.email} sent apologies for {row.meeting_id} by mail "
                             f"({reason[:80]})")

    def _proposal(self, incoming: Incoming, answer: Answer, now: datetime) -> Outcome:
        """"AGENDA: <item>" in reply to any message about a meeting: a proposal for its
        agenda, from a member; the admin sees it in `clerk status` and the pack lists it."""
        ids = [i for i in (incoming.in_reply_to, *incoming.references) if i]
        row = self.store.by_message_ids(ids)
        if row is None or row.meeting_id == "-" or row.group_id not in {
                g.id for g in self.config.groups}:
            return Outcome(False, "an agenda item in reply to nothing about a meeting")
        group = self.config.group(row.group_id)
        member = _member(group, incoming.sender)
        if member is None:
            return Outcome(False, f"{incoming.sender} is not on the roster of {group.id}")
        meeting = row.meeting_id
        found = next((m for m in group.meetings if m.id == meeting), None)
        if found is None or found.cancelled or found.start <= now:  # a series, or past
            upcoming = [m for m in group.meetings if not m.cancelled and m.start > now
                        and (found is not None or m.series == meeting)]
            if not upcoming:
                return Outcome(False, "an agenda item, but no meeting is coming up")
            meeting = upcoming[0].id
        self.store.propose(group.id, meeting, member.email, answer.argument, now)
        return Outcome(True, f"{member.name} proposed {answer.argument!r} for {meeting}")

    def _approval(self, incoming: Incoming, answer: Answer, row: Any, group: Group,
                  now: datetime) -> Outcome:
        """APPROVE from the chair (the request's [#token] verified) releases the minutes."""
        if not incoming.token or not check_token(self.store.secret(), row.key,
                                                 incoming.token):
            return Outcome(False, "an answer to an approval request without its [#token]: "
                                  "not applied")
        if incoming.sender != row.recipient:
            return Outcome(False, f"{incoming.sender} is not {row.recipient}, who was asked "
                                  "to approve: not applied")
        if answer.command != "APPROVE":
            return Outcome(False, "no APPROVE on the first line: the minutes stay held")
        path = group.minutes.get(row.meeting_id)
        if path is None or approval_key(group, row.meeting_id, row.recipient, path) != row.key:
            return Outcome(False, "these minutes have changed since this request; the chair "
                                  "is asked again: not applied")
        released = self.store.set_state([f"{group.id}/{row.meeting_id}/minutes/"], ("held",),
                                        "planned", now, f"approved by {incoming.sender}")
        return Outcome(True, f"minutes of {row.meeting_id} approved by {incoming.sender}: "
                             f"{len(released)} message(s) released")

    def _action_reply(self, incoming: Incoming, answer: Answer, row: Any, group: Group,
                      now: datetime) -> Outcome:
        """DONE / NEW DATE / UPDATE from the owner the chaser went to (or the admin), and only
        with the chaser's [#token]: a Message-ID alone can be guessed, an HMAC cannot."""
        if not incoming.token or not check_token(self.store.secret(), row.key,
                                                 incoming.token):
            return Outcome(False, "an answer to an action chaser without its [#token] in the "
                                  "subject: not applied")
        sender, admin = incoming.sender, group.admin.email
        if sender not in (row.recipient, admin):
            return Outcome(False, f"{sender} answered the chaser sent to {row.recipient}; only "
                                  "the owner or the admin may: not applied")
        if answer.command not in ACTION_COMMANDS:
            why = answer.reason or "no DONE, NEW DATE or UPDATE on the first line"
            return Outcome(False, f"{why}: not applied")
        if row.sent_at is not None and now - row.sent_at > TOKEN_LIFE:
            return Outcome(False, f"an answer to a chaser of {row.sent_at:%d %B %Y}, more than "
                                  f"{TOKEN_LIFE.days} days old: not applied; answer the latest "
                                  "one")
        listed_by = row.sent_at or now  # what the chaser listed: nothing newer
        theirs = [a for a in snapshot.actions(self.store)  # in all their groups
                  if a.created <= listed_by
                  and (row.recipient in a.owners or (actions.ALL in a.owners
                                                     and a.group == group.id))]
        closed = self._closed(theirs, row, answer)
        if closed is not None:
            return closed
        mine = [a for a in theirs if a.status == "open"]
        own = [a for a in mine if row.recipient in a.owners]  # not the all-members ones
        # "DONE #12" names one; a plain DONE means their only action of their own
        chosen = [a for a in mine if a.id == answer.ref] if answer.ref is not None else own
        if len(chosen) != 1:
            return self._which(incoming, row, group, mine, answer, now)
        action = chosen[0]
        if actions.ALL in action.owners and answer.command == "DONE" and sender not in (
                admin, group.chair.email if group.chair else admin):
            # an action for all members is closed by the chair or the admin: theirs is noted
            action_log.apply(self.store, group, action, "UPDATE", who=sender,
                             via=f"reply {incoming.message_id or ''}", now=now,
                             text=f"{incoming.sender_name or sender} has done their part")
            self._answer_back(incoming, group, f"Thank you: clerk has noted that you have "
                              f"done your part of {action.ref} ({action.text}). It is for all "
                              "members, so the chair closes it for the group.", now)
            return Outcome(True, f"{sender} did their part of {action.ref} (for all members; "
                                 "the chair closes it)")
        since = [h for h in self.store.action_history(action.id)
                 if row.sent_at is not None and h.at > row.sent_at]
        if answer.command == "NEW DATE" and since:
            return Outcome(False, f"{action.ref} changed after this chaser went "
                                  f"({since[-1].what}): this NEW DATE is not applied; answer "
                                  "the latest chaser")
        try:
            result = action_log.apply(self.store, self.config.group(action.group), action,
                                      str(answer.command),
                                   who=sender, via=f"reply {incoming.message_id or ''}",
                                   now=now, new_date=answer.date, text=answer.argument)
        except UsageError as exc:  # a NEW DATE in the past
            return Outcome(False, f"{exc.message}: not applied")
        return Outcome(True, result)

    def _closed(self, theirs: list[Any], row: Any, answer: Answer) -> Outcome | None:
        """An answer about an action closed (done or dropped) since: the one it names, or —
        a plain answer — one of the owner's own the chaser listed. Nothing is applied, not
        even to another action, and the admin reads it."""
        def closed_at(a: Any) -> datetime | None:
            return max((h.at for h in self.store.action_history(a.id)), default=None)

        sent = row.sent_at
        gone = [a for a in theirs if a.status != "open" and (
            a.id == answer.ref if answer.ref is not None else
            row.recipient in a.owners and (sent is None or (closed_at(a) or sent) >= sent))]
        if not gone:
            return None
        a = gone[0]
        at = closed_at(a)
        when = "since this chaser went" if sent is None or at is None or at >= sent \
            else "before this chaser went"
        return Outcome(False, f"{a.ref} ({a.text}) was closed ({a.status}) {when}: nothing "
                              f"changed; \"{answer.first_line}\" is for the admin to read")

    def _which(self, incoming: Incoming, row: Any, group: Group, mine: list[Any],
               answer: Answer, now: datetime) -> Outcome:
        """An answer that names no one action of several (or none): one reply to the owner
        listing them with their #ids — not a chase, and nothing applied."""
        if not mine:
            self._answer_back(incoming, group, "clerk has no open action of yours to apply "
                              f"\"{answer.first_line}\" to: nothing was changed.", now)
            return Outcome(True, f"{incoming.sender}: no open action to apply it to")
        lines = "\n".join(f"  {a.ref}  {a.text} (due {a.due:%a} {a.due.day} {a.due:%b %Y})"
                          for a in mine)
        verb = str(answer.command or "DONE")
        self._answer_back(incoming, group, f"Which action did you mean? Reply with its number "
                          f"on the first line, e.g. \"{verb} {mine[0].ref}\":\n\n{lines}\n\n"
                          "Nothing was changed yet.", now)
        return Outcome(True, f"asked {incoming.sender} which action ("
                             f"{' '.join(a.ref for a in mine)}): not applied yet")

    def _answer_back(self, incoming: Incoming, group: Group, body: str,
                     now: datetime) -> None:
        subject = incoming.subject if incoming.subject.lower().startswith("re:") \
            else f"Re: {incoming.subject}"
        self.store.owe_reply(group.id, incoming.sender, incoming.sender_name, subject, body,
                             incoming.message_id, now)

    def _answered_row(self, incoming: Incoming) -> Any:
        """The request or chaser this answers: by reference, else by its subject's token."""
        ids = [i for i in (incoming.in_reply_to, *incoming.references) if i]
        row = self.store.by_message_ids(ids)
        if row is not None and row.kind in ANSWERABLE:
            return row
        if incoming.token:
            secret = self.store.secret()
            for candidate in self.store.sent_to(incoming.sender, ANSWERABLE):
                if check_token(secret, candidate.key, incoming.token):
                    return candidate
        return None


def read(inbox: Inbox, raw: bytes | Oversized, trust: Trust, now: datetime) -> Outcome:
    """What one message from the mailbox (or a message file) comes to, applied. A message
    larger than ``max_message`` is not parsed at all: only its first bytes are looked at,
    for the log. Never raises for the message: one odd message must not stop clerk for
    good; the store failing (:class:`StoreError`) stops the tick, the message left unread."""
    s = inbox.config.settings
    incoming = Incoming(kind="unusable")
    try:
        if isinstance(raw, Oversized) or len(raw) > s.max_message:
            size, head = (raw.size, raw.head) if isinstance(raw, Oversized) else (
                len(raw), raw[:replies.HEAD])
            incoming = replace(replies.headers(head), reason=(
                f"{size:,} bytes, larger than max_message ({s.max_message:,}): not read"))
            return inbox.apply(incoming, now)
        incoming = replies.read(raw, max_attachment=s.max_attachment, max_parts=s.max_parts,
                                max_attachments=s.max_attachments, trust=trust)
        return inbox.apply(incoming, now)
    except StoreError:
        raise
    except Exception as exc:
        log.exception("inbox: could not use a message")
        outcome = Outcome(False, f"clerk could not use it: {exc!r}"[:500])
        with suppress(Exception):  # so it is in `clerk status` (unless the store is down)
            inbox.store.log_inbox(incoming.message_id, incoming.sender, incoming.subject,
                                  incoming.kind, False, outcome.detail, now)
        return outcome


def _member(group: Group, email: str) -> Member | None:
    return next((m for m in group.members if m.email == email.lower()), None)
