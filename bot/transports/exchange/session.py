"""An EWS session for the ``exchange`` transport: the options, the sign-in (NTLM, basic or
OAuth), exchangelib's configuration (no autodiscover, the version given, a short retry policy,
the certificate check) and the one place exchangelib's errors become TransportErrors that say
what to fix. exchangelib is imported only when a request is made."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.domain.errors import TransportError
from bot.domain.options import REQUIRED, Option, _bool, _choice, _email, _float, _int, _str
from bot.transports.base import PROPERTY_SET
from bot.transports.credentials import secret

log = logging.getLogger("clerk")
T = TypeVar("T")

PROPERTIES = {  # attribute → (property name, MAPI type, the item kinds that carry it)
    "clerk_key": ("ClerkKey", "String", ("Message",)),
    "clerk_uid": ("ClerkUid", "String", ("CalendarItem",)),
    "clerk_revision": ("ClerkRevision", "Integer", ("CalendarItem",)),  # its content saved
    "clerk_done": ("ClerkDone", "Integer", ("CalendarItem",)),  # … and its series' exceptions
    "clerk_part": ("ClerkPart", "Integer", ("CalendarItem",)),
}
VERSIONS = {  # the server's version → its build (exchangelib picks the API version from it)
    "Exchange2019": (15, 2, 0, 0),  # also Exchange Server SE
    "Exchange2016": (15, 1, 0, 0),
    "Exchange2013_SP1": (15, 0, 847, 0),
    "Exchange2013": (15, 0, 0, 0),
}


def _server(v: Any) -> str:
    """The EWS endpoint: a URL, or a host name meaning the usual path on it."""
    server = _str(v).strip()
    try:
        host = urlsplit(server if "://" in server else f"https://{server}/").hostname
    except ValueError as exc:
        raise ValueError(f"{server!r} is not a URL nor a host name ({exc})") from None
    if not host:
        raise ValueError(f"{server!r} is not a URL nor a host name: write "
                         "https://mail.example.org/EWS/Exchange.asmx or mail.example.org")
    return server


OPTIONS = {
    "server": Option(REQUIRED, _server, "the EWS URL (https://mail.example.org/EWS/Exchange.asmx), "
                     "or the host name alone for that path on it"),
    "mailbox": Option(REQUIRED, _email, "the organiser's primary SMTP address"),
    "auth": Option("ntlm", _choice("ntlm", "basic", "oauth"),
                   "ntlm or basic (user name and password), or oauth (hybrid modern auth: "
                   "client_id, tenant_id and a client secret)"),
    "username_env": Option("CLERK_EWS_USERNAME", _str,
                           "variable holding the user name (DOMAIN\\user or user@domain)"),
    "username_file": Option("", _str, "file holding the user name"),
    "password_env": Option("CLERK_EWS_PASSWORD", _str, "variable holding the password"),
    "password_file": Option("", _str, "file holding the password"),
    "client_id": Option("", _str, "oauth: the app registration's application (client) id"),
    "tenant_id": Option("", _str, "oauth: the Microsoft Entra tenant (directory) id"),
    "client_secret_env": Option("CLERK_EWS_SECRET", _str,
                                "oauth: variable holding the app's client secret"),
    "client_secret_file": Option("", _str, "oauth: file holding the app's client secret"),
    "version": Option("Exchange2019", _choice(*VERSIONS),
                      "the server's version (Exchange2019 for 2019 and SE), so clerk does not "
                      "probe it"),
    "max_wait": Option(10.0, _float, "longest wait for a busy server inside one tick, "
                       "seconds; longer: the ledger retries later (0: never wait)"),
    "timeout": Option(30.0, _float, "seconds to wait for the server"),
    "verify": Option(True, _bool, "verify the server's certificate (keep it on)"),
    "cafile": Option("", _str, "a CA bundle for a private certificate authority"),
    "inbox": Option("inbox", _str, "the folder clerk reads (inbox: the Inbox)"),
    "processed": Option("clerk/processed", _str, "where handled messages go"),
    "unprocessed": Option("clerk/unprocessed", _str, "where messages clerk cannot use go"),
    "batch": Option(200, _int, "at most this many messages read per tick"),
}

# exchangelib's errors that a later attempt may get past (throttling, a busy or moving
# mailbox, a lost connection, an item changed under us); any other error code will not clear
# by itself and fails with what to fix
TRANSIENT = frozenset((
    "ErrorServerBusy", "RateLimitError", "ErrorTimeoutExpired", "ErrorInternalServerError",
    "ErrorInternalServerTransientError", "ErrorConnectionFailed",
    "ErrorConnectionFailedTransientError", "ErrorTooManyObjectsOpened",
    "ErrorExceededConnectionCount", "ErrorMailboxMoveInProgress", "ErrorMailboxStoreUnavailable",
    "ErrorBatchProcessingStopped", "ErrorIrresolvableConflict", "ErrorStaleObject",
    "ErrorInvalidChangeKey", "ErrorQuotaExceeded", "ErrorADUnavailable",
    "ErrorMailboxDataArrayTooBig",
    "ErrorItemNotFound",  # a meeting's item deleted by hand: looked for again, made anew
))
ADVICE = {
    "UnauthorizedError": "Exchange refused clerk's credentials: check the variables named by "
                         "{credentials} (an expired password or a locked account looks the "
                         "same)",
    "ErrorAccessDenied": "{user} may not use the mailbox {mailbox}: give it Full Access "
                         "(Add-MailboxPermission -Identity {mailbox} -User {user} -AccessRights "
                         "FullAccess) and Send As, or sign in as the organiser",
    "ErrorNonExistentMailbox": "Exchange has no mailbox {mailbox}: set mailbox to the "
                               "organiser's primary SMTP address",
    "ErrorInvalidRecipients": "Exchange refused a recipient's address: correct it in the roster",
    "ErrorMailRecipientNotFound": "Exchange refused a recipient's address: correct it in the "
                                  "roster",
    "ErrorImpersonateUserDenied": "{user} may not act as {mailbox}: assign it the "
                                  "ApplicationImpersonation role (New-ManagementRoleAssignment "
                                  "-Role ApplicationImpersonation -User {user})",
    "ErrorImpersonationDenied": "{user} may not act as {mailbox}: assign it the "
                                "ApplicationImpersonation role",
    "ErrorImpersonationFailed": "{user} may not act as {mailbox}: assign it the "
                                "ApplicationImpersonation role",
    "ErrorSendAsDenied": "{user} may not send as {mailbox}: give it Send As (Add-ADPermission "
                         "-Identity <the organiser> -User {user} -ExtendedRights 'Send As')",
    "ErrorMessageSizeExceeded": "the message is larger than Exchange accepts: raise the limit "
                                "(Set-TransportConfig -MaxSendSize) or lower "
                                "clerk.zip_papers_above",
    "ErrorQuotaExceeded": "the mailbox {mailbox} is full: free space or raise its quota",
    "ErrorInvalidServerVersion": "the server does not speak {version}: set version to the "
                                 "server's (Exchange2016, Exchange2013)",
    "ErrorInvalidSchemaVersionForMailboxVersion": "the mailbox is on an older server than "
                                                  "{version}: set version to its",
    "ErrorIncorrectSchemaVersion": "the server does not speak {version}: set version to the "
                                   "server's",
    "RedirectError": "the server sent clerk elsewhere: set server to the EWS URL, "
                     "https://<host>/EWS/Exchange.asmx",
    "ErrorItemNotFound": "the item is gone from {mailbox}'s calendar (deleted in Outlook?): "
                         "clerk looks again and makes it anew at the next attempt",
    "ErrorFolderNotFound": "a folder of {mailbox} is missing: check that mailbox is the "
                           "organiser's own mailbox",
    "OAuth2Error": "the OAuth sign-in failed: check client_id, tenant_id and the client secret; "
                   "the app needs full_access_as_app (Office 365 Exchange Online) with admin "
                   "consent",
}


class Ews:
    """One sign-in to the organiser's mailbox: the exchangelib Account (made on first use),
    its well-known folders, and the one place exchangelib's errors become TransportErrors."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        server = str(options.get("server") or "")
        self.endpoint = server if "://" in server else f"https://{server}/EWS/Exchange.asmx"
        self.host = urlsplit(self.endpoint).hostname or server
        self.address = str(options.get("mailbox") or "")
        self.auth = str(options.get("auth", "ntlm"))
        self._account: Any = None
        self._folders: dict[str, Any] = {}

    def __repr__(self) -> str:  # never shows credentials
        return f"<Ews {self.address} at {self.endpoint} ({self.auth})>"

    # --- signing in ------------------------------------------------------------------------

    def missing(self) -> list[str]:
        """What the sign-in lacks, each as the setting to fill in."""
        ids = ("client_id", "tenant_id") if self.auth == "oauth" else ()
        secrets = ("client_secret",) if self.auth == "oauth" else ("username", "password")
        return [n for n in ids if not self.options.get(n)] + [
            f"{self.options.get(f'{n}_env') or f'{n}_env'} (or {n}_file)"
            for n in secrets if not secret(self.options, n)]

    def _credentials(self) -> Any:
        from exchangelib import Credentials, Identity, OAuth2Credentials

        missing = self.missing()
        if missing:
            raise TransportError(f"cannot sign in to {self.host}: set {', '.join(missing)}",
                                 retryable=False)
        if self.auth == "oauth":
            return OAuth2Credentials(
                client_id=self.options["client_id"], tenant_id=self.options["tenant_id"],
                client_secret=secret(self.options, "client_secret"),
                identity=Identity(primary_smtp_address=self.address))
        return Credentials(secret(self.options, "username"), secret(self.options, "password"))

    @property
    def account(self) -> Any:
        """The exchangelib Account; signing in is lazy (the first request does it)."""
        if self._account is None:
            from exchangelib import DELEGATE, Account, Build, Configuration, EWSTimeZone, Version
            from exchangelib.transport import BASIC, NTLM, OAUTH2

            adapter(bool(self.options.get("verify", True)), str(self.options.get("cafile")
                                                                 or ""))
            registered()
            config = Configuration(
                service_endpoint=self.endpoint, credentials=self._credentials(),
                auth_type={"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}[self.auth],
                version=Version(build=Build(*VERSIONS[self.options.get("version",
                                                                       "Exchange2019")])),
                retry_policy=policy(float(self.options.get("max_wait", 10.0))))
            forget(config)  # exchangelib caches a protocol per endpoint and credentials
            account = Account(self.address, config=config, autodiscover=False,
                              access_type=DELEGATE, default_timezone=EWSTimeZone("UTC"))
            account.protocol.TIMEOUT = float(self.options.get("timeout", 30.0))
            self._account = account
        return self._account

    def folder(self, name: str) -> Any:
        """A well-known folder (``calendar``, ``inbox``, ``sentitems``, ``deleteditems``,
        ``msgfolderroot``) by its distinguished id: no request is made to find it."""
        if name not in self._folders:
            from exchangelib import Mailbox
            from exchangelib.folders import (
                Calendar,
                DeletedItems,
                DistinguishedFolderId,
                Inbox,
                MsgFolderRoot,
                Root,
                SentItems,
            )

            cls = {"calendar": Calendar, "inbox": Inbox, "sentitems": SentItems,
                   "deleteditems": DeletedItems, "msgfolderroot": MsgFolderRoot}[name]
            root = self._folders.setdefault("root", Root(account=self.account))
            self._folders[name] = cls(root=root, _distinguished_id=DistinguishedFolderId(
                id=name, mailbox=Mailbox(email_address=self.address)))
        return self._folders[name]

    def close(self) -> None:
        account, self._account = self._account, None
        self._folders.clear()
        if account is not None:
            try:
                forget(account.protocol.config)
                account.protocol.close()
            except Exception:  # closing a broken connection: nothing left to do
                log.debug("closing the EWS session failed", exc_info=True)

    # --- requests ------------------------------------------------------------------------

    def run(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, with exchangelib's errors as TransportErrors saying what to fix. An
        OAuth token refused with a 401 (revoked, or expired by the server's clock) is
        fetched again once and the call made again: nothing was done with the old one."""
        for attempt in (1, 2):
            try:
                return call()
            except TransportError:
                raise
            except Exception as exc:
                if attempt == 1 and self.auth == "oauth" and \
                        type(exc).__name__ == "UnauthorizedError":
                    # exchangelib has already retired the session and its token: the next
                    # request signs in again
                    log.info("exchange: token refused; trying once more with a new one")
                    continue
                error = self.error(what, exc)
                if error is None:
                    raise
                raise error from exc
        raise AssertionError("unreachable")

    def error(self, what: str, exc: BaseException) -> TransportError | None:
        """``exc`` as a TransportError (None: not a server or network error — a bug)."""
        import requests
        from exchangelib.errors import EWSError, RateLimitError, ResponseMessageError
        from oauthlib.oauth2 import OAuth2Error

        name = type(exc).__name__
        if isinstance(exc, OAuth2Error):
            name = "OAuth2Error"
        elif not isinstance(exc, EWSError | requests.RequestException):
            return None
        detail = " ".join(str(exc).split()).rstrip(".") or name
        if name not in detail:
            detail = f"{name}: {detail}"
        advice = ADVICE.get(name, "")
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            advice = "the server's certificate is not trusted: set cafile to your CA bundle"
        if advice:
            user = "the app" if self.auth == "oauth" else \
                (secret(self.options, "username") or "clerk's account")
            credentials = "client_id, tenant_id and client_secret_env" \
                if self.auth == "oauth" else "username_env and password_env"
            advice = advice.format(user=user, mailbox=self.address, credentials=credentials,
                                   version=self.options.get("version", "Exchange2019"))
        message = f"cannot {what} ({self.host}): {detail}" + (f"; {advice}" if advice else "")
        retry_after = None
        if isinstance(exc, RateLimitError):  # waited max_wait already; the server wants more
            retry_after = float(exc.wait)
        elif getattr(exc, "back_off", None):  # ErrorServerBusy's BackOffMilliseconds
            retry_after = float(getattr(exc, "back_off"))  # noqa: B009
        if name in TRANSIENT:
            return TransportError(message, retryable=True, retry_after=retry_after,
                                  in_doubt=name == "ErrorTimeoutExpired")
        if name in ADVICE or isinstance(exc, ResponseMessageError):
            return TransportError(message, retryable=False)
        # a dropped connection, a timeout, a garbled answer: may clear by itself, and may
        # have been carried out
        return TransportError(message, retryable=True, retry_after=retry_after, in_doubt=True)


# --- exchangelib, set up once -----------------------------------------------------------------


@functools.cache
def registered() -> dict[str, type]:
    """clerk's extended properties, registered on exchangelib's item classes once per
    process (registering twice is an error in exchangelib)."""
    from exchangelib import CalendarItem, ExtendedProperty, Message
    from exchangelib.fields import InvalidField

    kinds = {"Message": Message, "CalendarItem": CalendarItem}
    made: dict[str, type] = {}
    for attr, (name, kind, owners) in PROPERTIES.items():
        cls = type(name, (ExtendedProperty,), {
            "__doc__": f"clerk's {name} (a {kind}) in clerk's property set",
            "property_set_id": PROPERTY_SET, "property_name": name, "property_type": kind})
        for owner in owners:
            try:
                kinds[owner].get_field_by_fieldname(attr)
            except InvalidField:
                kinds[owner].register(attr, cls)
        made[attr] = cls
    return made


@functools.cache
def lenient(service: str) -> type:
    """exchangelib's service ``service`` (CreateItem, DeleteItem), but each item's own error
    comes back as its result: exchangelib raises some (ErrorInvalidRecipients, an occurrence
    deleted already), which would lose the outcome of the other items of the request —
    done, but not known to be."""
    from exchangelib import services
    from exchangelib.errors import ResponseMessageError

    return type(service, (getattr(services, service),),
                {"ERRORS_TO_CATCH_IN_RESPONSE": ResponseMessageError})


def policy(max_wait: float) -> Any:
    """exchangelib's retry policy: none at all (``max_wait`` 0), or waits of at most
    ``max_wait`` seconds in all — except that a 401 is refused credentials, never retried
    (exchangelib's fault-tolerant policy would take it for throttling and wait)."""
    from exchangelib.protocol import FailFast

    return FailFast() if max_wait <= 0 else patient()(max_wait=max_wait)


@functools.cache
def patient() -> type:
    from exchangelib.errors import UnauthorizedError
    from exchangelib.protocol import FaultTolerance

    class Patient(FaultTolerance):  # type: ignore[misc]
        def raise_response_errors(self, response: Any) -> Any:
            if response.status_code == 401:
                raise UnauthorizedError(f"Invalid credentials for {response.url}")
            return super().raise_response_errors(response)

    return Patient


def adapter(verify: bool, cafile: str) -> None:
    """The HTTP adapter exchangelib's sessions use: the certificate checked against the
    system's CAs, a private ``cafile``, or (``verify = false``) not at all. exchangelib
    reads it from a class attribute, so it holds for the process (one Exchange per clerk)."""
    import requests.adapters
    from exchangelib.protocol import BaseProtocol, NoVerifyHTTPAdapter

    if not verify:
        BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
    elif cafile:
        BaseProtocol.HTTP_ADAPTER_CLS = ca_adapter(cafile)
    else:
        BaseProtocol.HTTP_ADAPTER_CLS = requests.adapters.HTTPAdapter


@functools.cache
def ca_adapter(cafile: str) -> type:
    import requests.adapters

    class PrivateCa(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["verify"] = cafile
            return super().send(request, *args, **kwargs)

    return PrivateCa


def forget(config: Any) -> None:
    """Drop exchangelib's cached protocol for this endpoint and credentials, so a new
    Account gets this configuration (retry policy, version) and no session from before."""
    from exchangelib.protocol import Protocol

    try:
        protocol, _ = Protocol[config]
        del Protocol[config]
    except KeyError:
        return
    if not isinstance(protocol, Exception):
        protocol.close()
