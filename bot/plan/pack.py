"""The agenda pack's preview for the admin, and her decisions on it (bot/engine/desk.py).

``[desk] pack_preview`` before the pack goes, the admin is sent the pack exactly as the first
member will get it (the same message, the same agenda .docx and papers), to answer APPROVE (it
goes now), HOLD (kept back) or ADD <item> (an item added; a new preview follows, since the
preview is keyed by what the agenda holds). With ``pack_approval = "required"`` the pack is
held until she APPROVEs it; otherwise it goes at its time unless she HOLDs it. The preview
also lists the papers kept back from this pack (bot/engine/papers.py: not an allowed type, or
over a limit), which no member gets, with the reason for each.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.domain import timeutil
from bot.domain.model import Config, Desired, Group, Meeting
from bot.plan.state import Decision, Quarantined, State
from bot.render.templates import render

PACK = "pack"
PACK_PREVIEW = "pack_preview"


def pack_prefixes(group: Group, meeting: Meeting) -> list[str]:
    """The ledger key prefixes of a meeting's pack messages (one per pack rule)."""
    return [f"{group.id}/{meeting.id}/{r.id}/" for r in group.rules if r.kind == PACK]


def decided(state: State, group: Group, meeting: str) -> Decision | None:
    """The admin's last APPROVE or HOLD of a meeting's pack."""
    found = [d for d in state.group_decisions(group.id)
             if (d.meeting, d.subject) == (meeting, PACK)]
    return found[-1] if found else None


def previews(config: Config, state: State, messages: list[Desired], now: datetime,
             horizon: list[datetime]) -> list[Desired]:
    """The pack messages with the admin's decisions applied (an APPROVE sends them at once;
    a HOLD, or approval required and not given, holds them), and a preview of each pack for
    her, at ``pack_preview`` before it goes."""
    out: list[Desired] = []
    packs: dict[tuple[str, str], list[Desired]] = {}
    for d in messages:
        if d.kind == PACK:
            packs.setdefault((d.group, d.meeting), []).append(d)
        else:
            out.append(d)
    groups = config.by_id
    for (group_id, meeting), found in packs.items():
        group = groups[group_id]
        desk = group.desk
        decision = decided(state, group, meeting)
        approved = decision is not None and decision.decision == "approved"
        hold = (decision is not None and decision.decision == "held") or (
            desk.pack_approval == "required" and not approved)
        if approved and decision is not None:
            found = [replace(d, send_at=min(d.send_at, decision.at.astimezone(UTC)),
                             initial="planned" if d.initial == "held" else d.initial)
                     for d in found]
        elif hold:
            found = [replace(d, initial="held", hold=True) if d.initial == "planned" else d
                     for d in found]
        out += found
        first = min(found, key=lambda d: (d.send_at, d.recipient.email))
        gone = all(state.keys.get(d.key) in ("sending", "sent") for d in found)
        if desk.pack_preview is None or gone or approved:
            continue
        send_at = max(first.send_at - desk.pack_preview, group.go_live.astimezone(UTC))
        latest = max(d.latest for d in found)
        if latest <= now:
            continue
        horizon.append(latest)
        kept_back = [q for q in state.quarantined if (q.group, q.meeting) == (group_id, meeting)]
        out.append(_preview(group, first, send_at, latest, hold, len(found), kept_back))
    return out


def examples(group: Group) -> list[tuple[str, dict[str, Any]]]:
    """An example context of the preview (``clerk check`` renders the group's templates),
    with a paper kept back."""
    from bot.plan.context import example_context

    rule = next((r for r in group.rules if r.kind == PACK), None)
    if rule is None:
        return []
    first = example_context(group, rule)
    now = group.go_live
    kept = Quarantined(0, group.id, "", "An Organisation", "member@example.org",
                       "Updated agenda.pdf.exe", True, "a program (exe), not a paper", now,
                       False)
    return [(PACK_PREVIEW, _preview_context(group, first, now, False, len(group.attendees),
                                            [kept]))]


def _preview_context(group: Group, first: dict[str, Any], sends_at: datetime, held: bool,
                     members: int, kept_back: list[Quarantined]) -> dict[str, Any]:
    return dict(first, preview={
        "sends_at": sends_at.astimezone(timeutil.zone(group.zone)), "held": held,
        "members": members, "required": group.desk.pack_approval == "required",
        "kept_back": [{"name": q.name, "sender": q.sender, "organisation": q.organisation,
                       "reason": q.reason, "kept": q.kept} for q in kept_back]})


def _preview(group: Group, first: Desired, send_at: datetime, latest: datetime, held: bool,
             members: int, kept_back: list[Quarantined]) -> Desired:
    m = first.context["meeting"]
    agenda = {"agenda": m["agenda"], "nudges": m["nudges"], "proposals": m["proposals"]}
    digest = hashlib.sha256(json.dumps(agenda, sort_keys=True, default=str).encode()
                            ).hexdigest()[:10]
    context = _preview_context(group, first.context, first.send_at, held, members, kept_back)
    subject = render(group, PACK_PREVIEW, "subject", context)
    return Desired(
        key=f"{group.id}/{first.meeting}/{PACK_PREVIEW}/{group.admin.email}/{digest}",
        group=group.id, meeting=first.meeting, rule=PACK_PREVIEW, kind=PACK_PREVIEW,
        recipient=group.admin, send_at=send_at, latest=latest, subject=subject,
        reason=f"a preview of the agenda pack of {first.meeting} for the admin",
        template=PACK_PREVIEW, context=context)
