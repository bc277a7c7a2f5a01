"""Owners' answers to their action chasers: DONE, NEW DATE or UPDATE, from the owner the
chaser went to (or the admin), with the chaser's [#token] — applied to the action they name,
or to their only one; an answer that names none of several is asked about once, and one about
an action closed since changes nothing. A mixin of :class:`bot.engine.inbox.Inbox`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.domain.errors import UsageError
from bot.domain.model import Config, Group
from bot.domain.tokens import check_token
from bot.engine import action_log, snapshot
from bot.engine.result import Outcome
from bot.engine.store import Store
from bot.listen.replies import Answer, Incoming
from bot.plan import actions

ACTION_COMMANDS = ("DONE", "NEW DATE", "UPDATE")
TOKEN_LIFE = timedelta(days=60)  # an action chaser's [#token] works this long


class ChaserReplies:
    config: Config
    store: Store

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
