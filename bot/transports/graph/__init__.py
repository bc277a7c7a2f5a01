"""The ``graph`` transport: Microsoft 365 through Microsoft Graph (msal + httpx).

A thin adapter of clerk's own — not the Graph SDK, which is hundreds of megabytes and slow to
import. It does what clerk needs and no more:

- meetings: ``POST /users/{mailbox}/events`` (the server mails the invitations), ``PATCH`` for
  updates and attendee changes, ``POST …/cancel`` for cancellations, a series' cancelled and
  moved meetings through ``…/instances``; the attendees' ``status.response`` read back as
  RSVPs in ``$batch`` requests (of four: Outlook serves four requests at once per mailbox);
- messages: ``POST /users/{mailbox}/sendMail``; with attachments over 3 MB together, a draft,
  an upload session per large attachment (chunks of 320 KiB multiples), then ``…/send``;
- the inbox read for replies (``…/messages/{id}/$value`` is the message as sent, MIME) and
  each message moved to ``clerk/processed`` or ``clerk/unprocessed``; nothing is deleted.

Every event and message carries the ledger's key (messages) or the meeting's UID and
revision (events) as single-value extended properties, so after a crash clerk finds what
Microsoft 365 already holds instead of sending it twice; a new event also carries a
``transactionId``, which makes Graph refuse to create the same event twice.

Throttling: 429, 503 and 504 are retried in place when ``Retry-After`` is short (at most
``max_wait`` seconds); a longer wait becomes a retryable TransportError carrying it, so the
ledger waits instead of the worker. A 401 (an expired or revoked token) gets one new token
and one more try.

Permissions (application, admin consent): Calendars.ReadWrite, Mail.Send, Mail.ReadWrite;
scope them to the organiser's mailbox with an application access policy (docs/transports.md).

Its modules: ``session`` (sign-in, requests, throttling, paging, ``$batch``; the options),
``meetings`` (events), ``messages`` (``sendMail``, upload sessions, the Sent Items look-up),
``mailbox`` (the inbox), ``doctor`` (``clerk doctor``) and ``transport``, which puts the
meetings and the messages together as :class:`GraphTransport`.
"""

from bot.transports.graph.mailbox import GraphMailbox
from bot.transports.graph.session import OPTIONS
from bot.transports.graph.transport import GraphTransport

__all__ = ["OPTIONS", "GraphMailbox", "GraphTransport"]
