"""The admin's desk by mail: minutes she mails are imported and summarised with numbered
questions, her reply's commands are done and confirmed, the pack is previewed for her approval;
the same commands from anyone else, or unauthenticated, change nothing and are reported."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.inbox import Inbox, Outcome
from bot.engine.store import Store
from bot.listen import replies
from bot.transports.memory import MemoryTransport
from tests.conftest import TRUST, read_reply

ADMIN = "kim.osei@network.example"
CLERK = "qa-leads@network.example"
MINUTES = """\
# QA Leads Network — minutes of 14 January 2027

## Actions

| Topic | Action | Owner | Due |
|---|---|---|---|
| Invites | Review the meeting invites | Kim Osei | 31/01/2027 |
| LADO | Share the LADO audit tool | Jo | |
| Feedback | Circulate the questionnaire on direct payments | Jo and Tina Jameson | next meeting |
| Ofsted | Summarise the Ofsted inspection | Sam | |
"""
Q1_DAY = datetime(2027, 1, 18, 10, tzinfo=UTC)  # the Monday after the q1 meeting
_ids = itertools.count(1)


class Office:
    """The worker and the admin's mailbox, as a test drives them."""

    def __init__(self, make: Callable[[], Executor], store: Store) -> None:
        self.make, self.store = make, store
        self.ex = make()
        assert isinstance(self.ex.transport, MemoryTransport)
        self.transport: MemoryTransport = self.ex.transport

    def tick(self, at: datetime) -> list[str]:
        self.ex = self.make()  # the config as it is now (the minutes folder changes)
        return self.ex.tick(at).sent

    def mail(self, body: str, at: datetime, *, sender: str = ADMIN, subject: str = "Minutes",
             answering: EmailMessage | None = None, attach: tuple[str, bytes] | None = None,
             authentic: bool = True, message_id: str | None = None) -> Outcome:
        msg = EmailMessage()
        msg["From"], msg["To"] = sender, CLERK
        msg["Subject"] = f"Re: {answering['Subject']}" if answering is not None else subject
        msg["Message-ID"] = message_id or f"<desk{next(_ids)}@network.example>"
        if answering is not None:
            msg["In-Reply-To"] = msg["References"] = answering["Message-ID"]
        msg.set_content(body)
        if attach is not None:
            name, data = attach
            maintype, subtype = ("text", "markdown") if name.endswith(".md") else (
                "application", "octet-stream")
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        incoming = read_reply(msg) if authentic else replies.read(msg.as_bytes(), trust=TRUST)
        return Inbox(self.ex.config, self.store).apply(incoming, at)

    def answer(self, body: str, at: datetime, **mail: Any) -> str:
        """She writes ``body``; what clerk answers her, once the worker has ticked."""
        self.mail(body, at, **mail)
        self.tick(at)
        return text(self.last())

    def inbox(self, email: str = ADMIN) -> list[EmailMessage]:
        return [m for m in self.transport.sent if email in str(m["To"])]

    def last(self, email: str = ADMIN) -> EmailMessage:
        return self.inbox(email)[-1]


def text(msg: EmailMessage) -> str:
    return str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


@pytest.fixture
def office(make_executor: Callable[[], Executor], store: Store, group_dir: Path) -> Office:
    with (group_dir / "roster.csv").open("a") as f:  # a second Jo: "Jo" is either
        f.write("Joanna Whitfield,joanna.whitfield@surrey.example,Surrey,member\n")
    o = Office(make_executor, store)
    o.tick(datetime(2026, 12, 1, 10, tzinfo=UTC))
    return o


def mailed(office: Office, group_dir: Path, at: datetime = Q1_DAY,
           subject: str = "Minutes of 14 January") -> EmailMessage:
    """The admin mails the q1 minutes; the summary she gets back."""
    outcome = office.mail("Here are the minutes.\n\nKim", at, subject=subject,
                          attach=("QA minutes Jan.md", MINUTES.encode()))
    assert outcome.handled, outcome.detail
    office.tick(at)
    return office.last()


def test_minutes_by_mail_are_imported_summarised_and_held(office: Office, group_dir: Path):
    summary = mailed(office, group_dir)
    body = text(summary)
    assert summary["In-Reply-To"] and str(summary["Subject"]).startswith("Re: Minutes")
    # the file is where the group's minutes live, and the circulation is held
    assert (group_dir / "minutes" / "2027-q1.md").read_text() == MINUTES
    held = [r for r in office.store.rows(group="qa-leads", states=("held",))
            if r.kind == "minutes"]
    assert len(held) == 22
    # each action with its owners and due date; the unsettled ones as numbered questions
    assert "Actions recorded (1)" in body and "Kim Osei: Review the meeting invites" in body
    assert "due Sun 31 January 2027" in body
    assert "Q1: who is 'Jo'?" in body and "1 Joanne Beale  2 Joanna Whitfield  3 both" in body
    assert "Q2: who is 'Jo'?" in body and "Circulate the questionnaire" in body
    assert "Q3: who is 'Sam'?" in body and "answer with a name or email on the roster" in body
    assert "they go to the 22 members when you reply APPROVE" in body
    # nothing goes to the members yet
    assert not [k for k in office.tick(Q1_DAY + timedelta(hours=1)) if "/minutes/" in k]


def test_her_answers_settle_the_owners_and_approve_circulates(office: Office,
                                                             group_dir: Path):
    summary = mailed(office, group_dir)
    at = Q1_DAY + timedelta(hours=2)
    outcome = office.mail("> Q1: who is 'Jo'?\nQ1 2\nq2: both\nQ3 Sandra Davey\nAPPROVE.\n\n"
                          "Kind regards\nKim\nStatus: Network secretariat", at,
                          answering=summary)
    assert outcome.handled, outcome.detail
    actions = {a.text: a for a in snapshot.actions(office.store, "qa-leads")}
    assert actions["Share the LADO audit tool"].owners == ("joanna.whitfield@surrey.example",)
    assert set(actions["Circulate the questionnaire on direct payments"].owners) == {
        "joanne.beale@bracknell.example", "joanna.whitfield@surrey.example",
        "tina.jameson@brighton-hove.example"}
    assert actions["Summarise the Ofsted inspection"].owners == ("sandra.davey@slough.example",)
    # the stated "by the next meeting" is kept for the action settled by her answer
    assert str(actions["Circulate the questionnaire on direct payments"].due) == "2027-04-15"
    sent = office.tick(at)
    assert len([k for k in sent if "/minutes/" in k]) == 22
    confirm = next(m for m in office.inbox() if "Done:" in text(m))
    said = text(confirm)
    assert "Q1: #" in said and "Joanna Whitfield" in said
    assert "APPROVE: the minutes of QA Leads Network meeting on Thu 14 January 2027 go" in said
    assert "Not done" not in said and "STATUS" not in said.split("Done:")[1].split("\n")[1]
    # the status line of her signature was not taken for a command: no status reply owed
    assert not [r for r in office.store.reply_rows() if r.about == "status"]
    # the same message delivered again: nothing is done twice
    again = office.mail("Q1 2\nAPPROVE", at, answering=summary,
                        message_id=outcome_id(office))
    assert "nothing done twice" in again.detail
    assert len(snapshot.actions(office.store, "qa-leads")) == 4


def outcome_id(office: Office) -> str:
    """The Message-ID of the admin's last message that was applied."""
    return str(office.store.inbox_log(handled=True)[-1].message_id)


def test_a_question_answered_stays_answered(office: Office, group_dir: Path):
    summary = mailed(office, group_dir)
    office.mail("Q1 1", Q1_DAY, answering=summary)
    office.mail("Q1 2", Q1_DAY + timedelta(minutes=5), answering=summary)
    shared = [a for a in snapshot.actions(office.store, "qa-leads")
              if a.text == "Share the LADO audit tool"]
    assert [a.owners for a in shared] == [("joanne.beale@bracknell.example",)]
    office.tick(Q1_DAY + timedelta(minutes=10))
    assert "Q1 was answered already (joanne.beale@bracknell.example)" in text(office.last())


def test_a_reply_to_the_summary_of_replaced_minutes_is_refused(office: Office,
                                                               group_dir: Path):
    first = mailed(office, group_dir)
    corrected = MINUTES.replace("Summarise the Ofsted", "Summarise the latest Ofsted")
    office.mail("Corrected minutes attached", Q1_DAY + timedelta(hours=1),
                subject="Minutes of 14 January (corrected)",
                attach=("QA minutes Jan v2.md", corrected.encode()))
    office.tick(Q1_DAY + timedelta(hours=1))
    outcome = office.mail("APPROVE", Q1_DAY + timedelta(hours=2), answering=first)
    office.tick(Q1_DAY + timedelta(hours=2))
    said = text(office.last())
    assert "were replaced since (QA minutes Jan v2.md" in said and "Not done" in said
    assert "not done" in outcome.detail
    assert not [r for r in office.store.rows(group="qa-leads", states=("planned", "sent"))
                if r.kind == "minutes"]


def test_unknown_lines_get_the_list_of_commands_and_change_nothing(office: Office,
                                                                   group_dir: Path):
    summary = mailed(office, group_dir)
    said = office.answer("APROVE\n\nKim", Q1_DAY + timedelta(hours=1), answering=summary)
    assert "\"APROVE\": clerk does not know this command" in said
    assert "DUE #4 31 May" in said and "STATUS" in said  # the list
    assert not [r for r in office.store.rows(group="qa-leads", states=("planned",))
                if r.kind == "minutes"]


def test_due_done_and_drop_by_mail(office: Office, group_dir: Path):
    summary = mailed(office, group_dir)
    (invites,) = [a for a in snapshot.actions(office.store, "qa-leads")]
    at = Q1_DAY + timedelta(hours=1)
    office.mail(f"DUE #{invites.id} 31 May\nDONE #{invites.id}\nDROP #999", at,
                answering=summary)
    (after,) = snapshot.actions(office.store, "qa-leads")
    assert str(after.due) == "2027-05-31" and after.status == "done"
    history = office.store.action_history(after.id)
    assert {h.who for h in history[-2:]} == {ADMIN}
    assert all(h.via.startswith("mail <desk") for h in history[-2:])
    office.tick(at)
    said = text(office.last())
    assert f"#{after.id} is now due Mon 31 May 2027" in said
    assert "\"DROP #999\": no action #999" in said


@pytest.mark.parametrize("who", ["member", "forged"])
def test_commands_from_anyone_else_change_nothing_and_are_reported(
        office: Office, group_dir: Path, who: str):
    summary = mailed(office, group_dir)
    (invites,) = snapshot.actions(office.store, "qa-leads")
    at = Q1_DAY + timedelta(hours=1)
    if who == "member":  # a member who got hold of the summary (forwarded to her)
        outcome = office.mail(f"DROP #{invites.id}\nAPPROVE", at, answering=summary,
                              sender="gavin.swales@kent.example")
    else:  # the admin's address, not authenticated by the install's server
        outcome = office.mail(f"DROP #{invites.id}\nAPPROVE", at, answering=summary,
                              authentic=False)
    assert not outcome.handled
    assert ("not obeyed" in outcome.detail if who == "forged"
            else "who may not give them" in outcome.detail
            or "not on the roster" in outcome.detail or "clerk does not act" in outcome.detail)
    (after,) = snapshot.actions(office.store, "qa-leads")
    assert after.status == "open"
    assert not [r for r in office.store.rows(group="qa-leads", states=("planned",))
                if r.kind == "minutes"]
    unprocessed = office.store.inbox_log(handled=False)
    assert unprocessed and unprocessed[-1].detail == outcome.detail


def test_a_fresh_status_from_a_member_is_not_obeyed(office: Office):
    outcome = office.mail("STATUS", Q1_DAY, sender="gavin.swales@kent.example",
                          subject="status")
    assert not outcome.handled and "who may not give them" in outcome.detail
    assert not office.store.reply_rows()


def test_status_by_mail_owes_her_a_status(office: Office):
    outcome = office.mail("STATUS", Q1_DAY, subject="status please")
    assert outcome.handled
    assert [r.about for r in office.store.reply_rows()] == ["status", ""]


def test_the_admin_of_two_groups_is_asked_which(office: Office, config_dir: Path):
    from tests.conftest import second_group

    second_group(config_dir)
    office.tick(Q1_DAY)
    outcome = office.mail("STATUS", Q1_DAY, subject="status")
    assert "which group?" in outcome.detail
    office.tick(Q1_DAY)
    assert "You look after several groups" in text(office.last())
    named = office.mail("STATUS", Q1_DAY, subject="status of qa-leads")
    assert named.handled and "which group" not in named.detail


def test_minutes_of_a_meeting_named_by_its_date(office: Office, group_dir: Path):
    later = datetime(2027, 4, 20, 10, tzinfo=UTC)  # q2 has been too: q1 is named
    mailed(office, group_dir, at=later, subject="QA minutes 14/01/2027")
    assert (group_dir / "minutes" / "2027-q1.md").exists()
    assert not (group_dir / "minutes" / "2027-q2.md").exists()


def test_an_attachment_that_is_not_minutes_is_not_imported(office: Office, group_dir: Path):
    outcome = office.mail("Minutes attached", Q1_DAY,
                          attach=("minutes.docx", b"MZ\x90\x00 a program, named .docx"))
    office.tick(Q1_DAY)
    assert not (group_dir / "minutes").exists()
    assert "clerk found no command" in text(office.last())
    assert outcome.handled


def test_minutes_clerk_cannot_read_are_refused_with_the_reason(office: Office,
                                                               group_dir: Path):
    said = office.answer("Minutes attached", Q1_DAY,
                         attach=("minutes.md", b"We met. Nothing was agreed.\n"))
    assert "the minutes minutes.md: " in said and "no actions found" in said
    assert "/tmp" not in said and "clerk-minutes-" not in said  # the scratch copy's path
    assert not (group_dir / "minutes").exists() and not office.store.mailed_minutes()


# --- the pack ------------------------------------------------------------------------------

PREVIEW_AT = datetime(2027, 4, 6, 9, tzinfo=UTC)  # q2's pack goes on 8 April at 09:00 (BST)


def previewed(office: Office, at: datetime = PREVIEW_AT) -> EmailMessage:
    office.tick(at - timedelta(days=1))
    assert not [m for m in office.inbox() if str(m["Subject"]).startswith("Preview:")]
    office.tick(at)
    (preview,) = [m for m in office.inbox() if str(m["Subject"]).startswith("Preview:")]
    return preview


def test_the_admin_gets_a_preview_of_the_pack_as_members_will_get_it(office: Office):
    preview = previewed(office)
    body = text(preview)
    assert body.startswith("PREVIEW of the agenda pack")
    assert "Thursday 8 April 2027 at 09:00" in body or "on Thursday 8 April 2027" in body
    assert "How authorities triangulate feedback from families" in body
    assert [p.get_filename() for p in preview.iter_attachments()] == ["agenda-2027-q2.docx"]
    # without an answer it goes at its time
    assert len([k for k in office.tick(datetime(2027, 4, 8, 9, tzinfo=UTC))
                if "/2027-q2/pack/" in k]) == 22


def test_add_then_approve_sends_the_pack_now_with_the_item(office: Office):
    preview = previewed(office)
    at = PREVIEW_AT + timedelta(hours=1)
    office.mail("ADD Budget for 2027-28", at, answering=preview)
    office.tick(at)
    previews = [m for m in office.inbox() if str(m["Subject"]).startswith("Preview:")]
    assert len(previews) == 2 and "Budget for 2027-28" in text(previews[-1])
    assert "Budget for 2027-28\" is on the agenda" in "".join(
        text(m) for m in office.inbox() if "Done:" in text(m))
    later = at + timedelta(hours=1)
    office.mail("Approve", later, answering=previews[-1])
    packs = [k for k in office.tick(later) if "/2027-q2/pack/" in k]
    assert len(packs) == 22  # now, not on 8 April
    member = office.last("gavin.swales@kent.example")
    assert "Budget for 2027-28" in text(member)


def test_hold_keeps_the_pack_back_until_approved(office: Office):
    preview = previewed(office)
    office.mail("HOLD", PREVIEW_AT + timedelta(hours=1), answering=preview)
    day = datetime(2027, 4, 8, 9, tzinfo=UTC)
    assert not [k for k in office.tick(day) if "/pack/" in k]
    log = office.store.decisions("qa-leads")
    assert [(d.subject, d.decision, d.who) for d in log] == [("pack", "held", ADMIN)]
    office.mail("APPROVE", day + timedelta(hours=1), answering=preview)
    assert len([k for k in office.tick(day + timedelta(hours=1)) if "/pack/" in k]) == 22


def test_a_pack_that_needs_approval_waits_for_it(office: Office, group_dir: Path):
    with (group_dir / "group.toml").open("a") as f:
        f.write('\n[desk]\npack_approval = "required"\n')
    preview = previewed(office)
    assert "it is HELD, and goes only when you reply APPROVE" in " ".join(text(preview).split())
    assert not [k for k in office.tick(datetime(2027, 4, 9, 9, tzinfo=UTC)) if "/pack/" in k]
    office.mail("APPROVE pack", datetime(2027, 4, 9, 10, tzinfo=UTC), answering=preview)
    assert len([k for k in office.tick(datetime(2027, 4, 9, 10, tzinfo=UTC))
                if "/pack/" in k]) == 22


def test_no_preview_when_the_group_says_off(office: Office, group_dir: Path):
    with (group_dir / "group.toml").open("a") as f:
        f.write('\n[desk]\npack_preview = "off"\n')
    office.tick(PREVIEW_AT)
    assert not [m for m in office.inbox() if str(m["Subject"]).startswith("Preview:")]


def _keys(rows: list[Any]) -> list[str]:
    return [r.key for r in rows]


@pytest.mark.parametrize(("answer", "owners"), [
    ("Q1: 2 - Joanna", {"joanna.whitfield@surrey.example"}),
    ("Q1 Joanna Whitfield", {"joanna.whitfield@surrey.example"}),
    ("q1 1 and 2", {"joanne.beale@bracknell.example", "joanna.whitfield@surrey.example"}),
    ("Q1 joanne.beale@bracknell.example", {"joanne.beale@bracknell.example"}),
])
def test_she_may_answer_a_question_as_people_write(office: Office, group_dir: Path,
                                                   answer: str, owners: set[str]):
    summary = mailed(office, group_dir)
    office.mail(answer, Q1_DAY + timedelta(hours=1), answering=summary)
    (shared,) = [a for a in snapshot.actions(office.store, "qa-leads")
                 if a.text == "Share the LADO audit tool"]
    assert set(shared.owners) == owners


def test_an_answer_clerk_cannot_place_is_refused_with_the_choices(office: Office,
                                                                   group_dir: Path):
    summary = mailed(office, group_dir)
    said = office.answer("Q1 Jonathan", Q1_DAY + timedelta(hours=1), answering=summary)
    assert "clerk cannot tell who \"Jonathan\" is (1 Joanne Beale  2 Joanna Whitfield" in said
    assert not [a for a in snapshot.actions(office.store, "qa-leads")
                if a.text == "Share the LADO audit tool"]


def test_clerk_log_mail_says_who_asked_what(office: Office, group_dir: Path,
                                             clerk: Callable[..., Any], store: Store,
                                             tmp_path: Path):
    import json

    summary = mailed(office, group_dir)
    office.mail("Q1 2\nAPPROVE", Q1_DAY + timedelta(hours=1), answering=summary)
    office.mail("DROP #1", Q1_DAY + timedelta(hours=1), answering=summary, authentic=False)
    result = clerk("--state", str(store.url), "log", "--mail", "--json")
    assert result.exit_code == 0, result.output
    read = json.loads(result.output)
    assert [(m["sender"], m["handled"]) for m in read][-3:] == [
        (ADMIN, True), (ADMIN, True), (ADMIN, False)]
    assert "Q1: #" in read[-2]["detail"] and "APPROVE: the minutes" in read[-2]["detail"]
    assert "not obeyed" in read[-1]["detail"]
    printed = clerk("--state", str(store.url), "log", "--mail")
    assert "NOT DONE" in printed.output and ADMIN in printed.output


def test_approve_minutes_in_answer_to_a_preview_approves_the_minutes(office: Office,
                                                                     group_dir: Path):
    mailed(office, group_dir)
    preview = previewed(office)
    office.mail("APPROVE minutes", PREVIEW_AT + timedelta(hours=1), answering=preview)
    decided = [(d.subject, d.decision) for d in office.store.decisions("qa-leads")]
    assert decided == [("minutes", "approved")]
    assert [k for k in office.tick(PREVIEW_AT + timedelta(hours=1)) if "/2027-q1/minutes/" in k]


def test_owner_by_mail_takes_only_someone_on_the_roster(office: Office, group_dir: Path):
    summary = mailed(office, group_dir)
    (invites,) = snapshot.actions(office.store, "qa-leads")
    at = Q1_DAY + timedelta(hours=1)
    said = office.answer(f"OWNER #{invites.id} Nobody Known\nOWNER #999 Tina Jameson\n"
                         f"OWNER #{invites.id}", at, answering=summary)
    assert f"\"OWNER #{invites.id} Nobody Known\": 'Nobody Known' is not on the roster" in said
    assert "\"OWNER #999 Tina Jameson\": no action #999" in said
    assert "OWNER needs who (a name or an email) after the action's number" in said
    (after,) = snapshot.actions(office.store, "qa-leads")
    assert after.owners == invites.owners and after.assigned is None
    said = office.answer(f"OWNER #{invites.id} Tina Jameson", at + timedelta(minutes=5),
                         answering=summary)
    assert f"#{invites.id} is now owned by Tina Jameson" in said
    (after,) = snapshot.actions(office.store, "qa-leads")
    assert after.owners == ("tina.jameson@brighton-hove.example",)
