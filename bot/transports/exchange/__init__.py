"""The ``exchange`` transport: on-premises Exchange Server (2013 to SE) through EWS, with
exchangelib.

The organiser's mailbox does the work, as for the ``graph`` transport:

- meetings are items in the organiser's calendar with the members as attendees; Exchange
  mails the invitations, updates and cancellations (bot/plan/calendar.py says who hears what).
  A series is one recurring master; its cancelled meetings are deleted as occurrences and its
  moved ones changed as occurrences, each mailed by the server;
- messages are created and sent in the mailbox (a copy stays in Sent Items), a hundred to a
  request (:meth:`ExchangeTransport.send_many`);
- the inbox is read for replies and each message moved to ``clerk/processed`` or
  ``clerk/unprocessed`` (:class:`ExchangeMailbox`); nothing is deleted.

Every item carries clerk's extended properties (the property set ``PROPERTY_SET``, shared
with the ``graph`` transport so an item reads the same from either): a message its ledger key
(``ClerkKey``), a meeting its UID, content revision and part (``ClerkUid``,
``ClerkRevision``, ``ClerkDone``, ``ClerkPart``). After a crash clerk finds what the server
holds by them instead of sending twice.

The session — options, sign-in, exchangelib's set-up and its errors — is
bot/transports/exchange/session.py.
``server`` is the EWS endpoint: the full URL (``https://mail.example.org/EWS/Exchange.asmx``)
or a host name alone, meaning that URL on it. Nothing is autodiscovered and the version is
given (``version``), so exchangelib sends no probing requests. Sign-in: NTLM or basic with a
user name and password, or OAuth (hybrid modern authentication: an app registration's
client credentials; the app needs ``full_access_as_app`` and acts through
ApplicationImpersonation). exchangelib's own retries wait at most ``max_wait`` seconds (the
worker must not stall); past that a throttled request is a retryable TransportError carrying
the server's back-off, and the ledger waits. exchangelib is imported only when a request is
made: reading ``OPTIONS`` (``clerk --help``, config checks) stays fast.

Its modules: ``session`` (above), ``meetings`` (calendar items: create, update, cancel, a
series' occurrences, find, answers), ``items`` (what an item says: its fields, EWS's
Recurrence, which occurrences are left to do), ``messages`` (CreateItem, Sent Items),
``mailbox`` (the inbox), ``doctor`` (``clerk doctor``) and ``transport``, which puts the
meetings and the messages together as :class:`ExchangeTransport`.
"""

from bot.transports.exchange.items import recurrence
from bot.transports.exchange.mailbox import ExchangeMailbox
from bot.transports.exchange.session import OPTIONS
from bot.transports.exchange.transport import ExchangeTransport

__all__ = ["OPTIONS", "ExchangeMailbox", "ExchangeTransport", "recurrence"]
