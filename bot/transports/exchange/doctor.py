"""``clerk doctor`` for the ``exchange`` transport and mailbox: the credentials, then the
inbox, the calendar and Sent Items reached with the rights clerk needs in each."""

from __future__ import annotations

from bot.domain.errors import TransportError
from bot.transports.credentials import secret
from bot.transports.exchange.session import Ews


def doctor(ews: Ews) -> list[tuple[bool, str, str]]:
    """(ok, what was checked, how to fix it): the credentials, then one GetFolder for the
    inbox, calendar and Sent Items with the rights clerk's account has on each."""
    from exchangelib.fields import FieldPath
    from exchangelib.folders import Folder
    from exchangelib.services import GetFolder

    missing = ews.missing()
    checks = [(not missing, f"credentials for {ews.auth} sign-in",
               f"set {', '.join(missing)}" if missing else "")]
    if missing:
        return checks
    user = "the app" if ews.auth == "oauth" else (secret(ews.options, "username") or "")
    full_access = (f"give {user} Full Access on the mailbox: Add-MailboxPermission -Identity "
                   f"{ews.address} -User {user} -AccessRights FullAccess"
                   if ews.auth != "oauth" else
                   f"assign the app's account the ApplicationImpersonation role, scoped to "
                   f"{ews.address} (New-ManagementRoleAssignment -Role ApplicationImpersonation)")
    names = {"inbox": "the inbox", "calendar": "the calendar", "sentitems": "Sent Items"}
    try:
        folders = [ews.folder(n) for n in names]
        rights = FieldPath(field=Folder.get_field_by_fieldname("effective_rights"))
        found = ews.run(f"reach the mailbox {ews.address}", lambda: list(
            GetFolder(account=ews.account).call(folders=folders, additional_fields=[rights],
                                                shape="IdOnly")))
    except TransportError as exc:
        checks.append((False, f"reach the mailbox {ews.address} at {ews.endpoint}", str(exc)))
        return checks
    checks.append((True, f"reach the mailbox {ews.address} at {ews.endpoint}", ""))
    needs = {"inbox": ("read", "delete"), "calendar": ("read", "create_contents", "modify",
                                                       "delete"), "sentitems": ("read",)}
    for (name, shown), folder in zip(names.items(), found, strict=True):
        if isinstance(folder, Exception):
            error = ews.error(f"open {shown}", folder)
            checks.append((False, f"open {shown}", str(error or folder) + "; " + full_access))
            continue
        granted = folder.effective_rights
        lacking = [r for r in needs[name] if not getattr(granted, r, False)]
        checks.append((not lacking, f"{', '.join(needs[name])} in {shown}",
                       f"{user} lacks {', '.join(lacking)}: {full_access}" if lacking else ""))
    return checks
