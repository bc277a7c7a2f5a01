"""Who minutes name as an action's owners, matched to a group's roster (its members and the
admin).

"Jo Whitfield and Tom Hughes", "Jo & Tom", "Jo/Tom" and "Jo, Tom and Ann" are several owners;
"all members", "subgroup attendees" and the like are every member; "the chair" is the chair.
Each name is matched leniently — a full name with a letter out of place or an en dash in a
surname, "Kim" for "Kimesha", a first name nobody else on the roster has ("Siobhan"), a short
form from a small table ("Tom" for Thomas), initials ("JW") — and every match that is not
exact is reported, never made silently. A name that fits several people is left unsettled
with every one of them as a candidate, for the admin to choose; one that fits nobody has none.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, replace

from bot.domain.model import Group, Person

ALL = "*"  # every member
ALL_WORDS = ("all members", "subgroup", "sub-group", "group members", "attendees", "everyone",
             "all organisations", "all local authorities", "all las", "all partners",
             "each member", "every member")  # anywhere in the owner's text
ALL_NAMES = ("all", "everybody", "group", "the group", "members", "the members")  # the whole
CHAIR_WORDS = ("chair", "the chair", "chairperson", "the chairperson", "the group chair")
ADMIN_WORDS = ("admin", "the admin", "group admin", "the group admin", "administrator",
               "the administrator", "the clerk")
TITLES = ("dr", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "cllr", "sir", "dame")
# Short forms and the names they stand for: a modest table of the common English ones, read
# both ways ("Tom" in the minutes for Thomas on the roster, or "Thomas" for a roster's Tom).
# A short form that is also the start of the name ("Kim", "Sam") needs no entry.
SHORT = {
    "jo": ("joanna", "joanne", "josephine", "johanna"),
    "joe": ("joseph",), "tom": ("thomas",), "tommy": ("thomas",),
    "bob": ("robert",), "rob": ("robert",), "bill": ("william",), "will": ("william",),
    "liz": ("elizabeth",), "beth": ("elizabeth", "bethany"), "betty": ("elizabeth",),
    "kate": ("katherine", "catherine", "kathryn"), "katie": ("katherine", "catherine"),
    "cath": ("catherine",), "kath": ("katherine", "kathryn"),
    "jim": ("james",), "jamie": ("james",), "mike": ("michael",), "mick": ("michael",),
    "dave": ("david",), "steve": ("stephen", "steven"), "sue": ("susan", "suzanne"),
    "andy": ("andrew",), "tony": ("anthony",), "rick": ("richard",), "dick": ("richard",),
    "ted": ("edward",), "ned": ("edward",), "meg": ("margaret",), "maggie": ("margaret",),
    "peggy": ("margaret",), "mandy": ("amanda",), "becky": ("rebecca",), "becca": ("rebecca",),
    "sandy": ("sandra",), "jenny": ("jennifer",), "jess": ("jessica",),
    "kim": ("kimberley", "kimberly"), "nicky": ("nicola",), "vicky": ("victoria",),
}


_AND = r"\s*,?\s*\band\s+|\s*[,&/+]\s*(?:and\s+)?"  # between two owners' names


@dataclass(frozen=True)
class Owner:
    """One name as the minutes write it, and who it is."""

    name: str  # "Jo"
    emails: tuple[str, ...] = ()  # settled: one email, or ("*",) for every member
    note: str = ""  # how a match that is not exact was made
    candidates: tuple[Person, ...] = ()  # unsettled: who it may be (none: nobody fits)

    @property
    def settled(self) -> bool:
        return bool(self.emails)


@dataclass(frozen=True)
class Match:
    """The owners one action names. Each unsettled owner is one question for the admin ("who
    is 'Jo'?"), answered from its candidates — one, several, or all of them."""

    owners: tuple[Owner, ...] = ()

    @property
    def settled(self) -> bool:
        return bool(self.owners) and all(o.settled for o in self.owners)

    @property
    def emails(self) -> tuple[str, ...]:
        """Who the settled owners are: emails in order, once each; ("*",) for all members."""
        found = [e for o in self.owners for e in o.emails]
        return (ALL,) if ALL in found else tuple(dict.fromkeys(found))

    @property
    def unsettled(self) -> tuple[Owner, ...]:
        return tuple(o for o in self.owners if not o.settled)

    @property
    def notes(self) -> list[str]:
        return [o.note for o in self.owners if o.note]

    @property
    def candidates(self) -> list[Person]:
        """The candidates of every unsettled name, once each."""
        return list({p.email: p for o in self.unsettled for p in o.candidates}.values())

    def answer(self, name: str, people: list[Person], how: str = "chosen") -> Match:
        """This match with the owner ``name`` settled as ``people`` (the admin's answer)."""
        said = f"{', '.join(p.name for p in people)} ({how})"
        return Match(tuple(
            replace(o, emails=tuple(p.email for p in people), candidates=(),
                    note=f"{o.name!r} → {said}" if o.name else f"no owner named → {said}")
            if o.name == name and people else o for o in self.owners))


def split(owner_text: str) -> list[str]:
    """The names in an owner's text: "Jo Whitfield and Tom Hughes", "Jo & Tom", "Jo/Tom",
    "Jo, Tom and Ann" (never inside brackets: "Amanda Meadows (Hampshire & Isle of Wight)")."""
    text = " ".join(owner_text.split()).strip(" .;:")
    if not text or _is_all(norm(text)):
        return [text] if text else []
    parts, depth, current = [], 0, ""
    for piece in re.split(f"({_AND}|[()])", text, flags=re.IGNORECASE):
        if piece in ("(", ")"):
            depth += 1 if piece == "(" else -1
            current += piece
        elif depth == 0 and re.fullmatch(_AND, piece, re.IGNORECASE):
            parts.append(current)
            current = ""
        else:
            current += piece
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def match(owner_text: str, group: Group) -> Match:
    """Who ``owner_text`` names: each of its names matched to the roster (see :func:`split`)."""
    return Match(tuple(match_one(name, group) for name in split(owner_text)))


def match_one(name: str, group: Group) -> Owner:
    """One name: a member (or the admin), all members, or candidates. An organisation in
    brackets — "Douglas Sinclair (East Sussex)" — settles a tie, and one that differs from the
    roster's is reported."""
    written, hint = name, ""
    if m := re.match(r"^(.*?)\s*\(([^)]*)\)\s*$", name):
        written, hint = m.group(1), m.group(2)
    found = replace(_match_name(written, group), name=name)
    if hint and found.candidates:
        narrowed = [p for p in found.candidates
                    if norm(getattr(p, "organisation", "")) == norm(hint)]
        if len(narrowed) == 1:
            found = Owner(name, (narrowed[0].email,), f"{written!r} ({hint}) → "
                          f"{narrowed[0].name} <{narrowed[0].email}>")
    if hint and len(found.emails) == 1:
        person = next((p for p in group.members if p.email == found.emails[0]), None)
        if person is not None and norm(person.organisation) != norm(hint):
            found = replace(found, note=(found.note or f"{written!r} → {person.name}")
                            + f"; the minutes say {hint}, the roster {person.organisation}")
    return found


def people(group: Group) -> list[Person]:
    """Who may own an action: the members (guests too) and the admin, once each."""
    return list({p.email: p for p in (*group.members, group.admin)}.values())


def _match_name(written: str, group: Group) -> Owner:
    if "@" in written:  # an email, as an Owner cell may give it
        email = written.strip().strip("<>").lower()
        return Owner(written, (email,) if email in {p.email for p in people(group)} else ())
    wanted = " ".join(w for w in norm(written).split() if w not in TITLES)
    if not wanted:
        return Owner(written)
    if _is_all(wanted):
        return Owner(written, (ALL,), f"{written!r} → all members")
    role = group.chair if wanted in CHAIR_WORDS else group.admin if wanted in ADMIN_WORDS \
        else None
    if role is not None:
        return Owner(written, (role.email,), f"{written!r} → {role.name} <{role.email}>")
    everyone = people(group)
    exact = [p for p in everyone if norm(p.name) == wanted]
    if len(exact) == 1:
        return Owner(written, (exact[0].email,))
    if exact:
        return Owner(written, candidates=tuple(exact))
    found: list[Person] = []
    how = ""
    if re.fullmatch(r"(?:[A-Z]\.?\s?){2,4}", written.strip()):  # "JW", "J.W.", "ASG"
        found = [p for p in everyone if wanted.replace(" ", "") in _initials(p)]
        how = "initials"
    if not found and " " not in wanted:
        found = [p for p in everyone if _fits_one(wanted, norm(p.name).split())]
        how = f"the only {written.strip()} on the roster"
    elif not found:
        found = [p for p in everyone if _fits_full(wanted.split(), norm(p.name).split())]
        how = ""
    if len(found) == 1:
        (person,) = found
        return Owner(written, (person.email,), f"{written!r} → {person.name} <{person.email}>"
                     + (f" ({how})" if how else ""))
    # nobody fits: those it may still be (a first name or a surname alike), to choose from
    return Owner(written, candidates=tuple(found or _alike(wanted.split(), everyone)))


def _alike(written: list[str], everyone: list[Person]) -> list[Person]:
    def close(a: str, b: str) -> bool:
        return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8

    found = []
    for p in everyone:
        name = norm(p.name).split()
        if len(name) >= 2 and (close(written[0], name[0]) or close(written[-1], name[-1])):
            found.append(p)
    return found


def _fits_full(written: list[str], name: list[str]) -> bool:
    """A first and last name as written against a roster name: the surname alike (a letter
    out of place), the first name the same, its start, or a short form of it."""
    if len(name) < 2:
        return False
    first, last = written[0], written[-1]
    same_last = name[-1] == last or difflib.SequenceMatcher(None, name[-1], last).ratio() >= 0.85
    return same_last and _same_first(first, name[0], shortest=1)


def _fits_one(word: str, name: list[str]) -> bool:
    """One word as written — a first name, or a surname — against a roster name."""
    if not name:
        return False
    return _same_first(word, name[0], shortest=3) or (len(name) > 1 and name[-1] == word)


def _same_first(written: str, roster: str, *, shortest: int) -> bool:
    if written == roster or roster in SHORT.get(written, ()) or written in SHORT.get(roster, ()):
        return True
    # "Kim" for Kimesha; a start shorter than ``shortest`` letters is too loose to count
    return len(written) >= shortest and (roster.startswith(written) or
                                         (len(roster) >= shortest and written.startswith(roster)))


def _initials(p: Person) -> set[str]:
    parts = norm(p.name).split()
    if len(parts) < 2:
        return set()
    whole = "".join(w[0] for part in parts for w in part.split("-") if w)
    return {parts[0][0] + parts[-1][0], whole}


def _is_all(wanted: str) -> bool:
    return wanted in ALL_NAMES or any(w in wanted for w in ALL_WORDS)


def norm(text: str) -> str:
    """``text`` for comparing names: lower case, no accents, dashes as "-", no punctuation."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[‐‑‒–—―]", "-", text.lower())
    return " ".join(re.sub(r"[^a-z0-9\- ]", " ", text).split())

