"""The messages of the ``exchange`` transport: created and sent in the organiser's mailbox
(a copy stays in Sent Items), a hundred to a CreateItem request or fewer when attachments
would make it too big; Sent Items searched by the ledger key after a crash."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from bot.domain.errors import TransportError
from bot.transports.base import Mail
from bot.transports.exchange.session import Ews, lenient

REQUEST_BYTES = 24 * 1024 * 1024  # attachments per CreateItem (IIS limits EWS requests)


class ExchangeMessages:
    """The messages side of ExchangeTransport (bot/transports/exchange/transport.py), which
    holds the session."""

    ews: Ews
    account: Any  # the session's exchangelib Account
    batch: int

    def _message(self, out: Mail) -> Any:
        from exchangelib import Body, FileAttachment, HTMLBody, Mailbox, Message

        message = Message(
            account=self.account, folder=self.ews.folder("sentitems"), subject=out.subject,
            body=HTMLBody(out.html) if out.html else Body(out.text),
            to_recipients=[Mailbox(email_address=e, name=n or None) for n, e in out.to],
            cc_recipients=[Mailbox(email_address=e, name=n or None) for n, e in out.cc] or None,
            clerk_key=out.key or None)
        for name, mime, data in out.attachments:
            message.attach(FileAttachment(name=name, content_type=mime, content=data))
        return message

    def send(self, out: Mail) -> None:
        """One CreateItem (SendAndSaveCopy): sent, and a copy kept in Sent Items."""
        self.ews.run(f"send {out.key or out.message_id}",
                     lambda: self._message(out).send_and_save())

    def send_many(self, messages: list[Mail]) -> list[TransportError | None]:
        """Every message, in CreateItem requests of up to a hundred (fewer when large
        attachments would make a request too big for the server); each one's outcome. A
        request that fails fails the messages it carried and those after it."""
        from exchangelib.items import SEND_AND_SAVE_COPY, SEND_TO_NONE

        outs = messages
        outcomes: list[TransportError | None] = []

        def send(chunk: list[Mail]) -> list[Any]:
            items = [self._message(o) for o in chunk]
            return list(lenient("CreateItem")(account=self.account, chunk_size=len(items)).call(
                items=items, folder=self.ews.folder("sentitems"),
                message_disposition=SEND_AND_SAVE_COPY, send_meeting_invitations=SEND_TO_NONE))

        try:
            for chunk in _requests(outs, self.batch):
                results = self.ews.run("send messages", functools.partial(send, chunk))
                for out, result in zip(chunk, results, strict=True):
                    outcomes.append(None if not isinstance(result, Exception) else
                                    self.ews.error(f"send {out.key}", result)
                                    or TransportError(str(result), retryable=False))
        except TransportError as exc:
            outcomes += [exc] * (len(outs) - len(outcomes))
        return outcomes

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        """Whether Sent Items holds the message carrying ``key`` (one FindItem)."""
        if not key:
            return None
        sent = self.ews.folder("sentitems")
        return bool(self.ews.run(f"look up {key} in Sent Items",
                                 lambda: sent.filter(clerk_key=key).exists()))


def _requests(outs: Sequence[Mail], most: int) -> Iterator[list[Mail]]:
    """``outs`` in runs of at most ``most`` messages and about ``REQUEST_BYTES`` of
    attachments (base64 makes them a third larger): one CreateItem request each."""
    run: list[Mail] = []
    size = 0
    for out in outs:
        if run and (len(run) >= most or size + out.size * 4 // 3 > REQUEST_BYTES):
            yield run
            run, size = [], 0
        run.append(out)
        size += out.size * 4 // 3
    if run:
        yield run
