"""Who the in-network task belongs to: `in_network.owner`, or the caller's own id as STS names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from preflight.cloud.failures import is_credential_error
from preflight.engine.text import shorten
from preflight.errors import CloudError, ConfigError

if TYPE_CHECKING:
    from preflight.cloud.session import CloudSession
    from preflight.config import Config

IDENTITY_WORDS = {"RAMUser": "RAM user", "Account": "Alibaba Cloud account"}


@dataclass(frozen=True)
class Owner:
    """Who the ad hoc task belongs to (DataWorks' Owner, an account id) and where the tool got it from."""

    id: str
    source: str


async def task_owner(config: Config, session: CloudSession, region: str) -> Owner:
    """`in_network.owner` when set, else the caller's own id: STS GetCallerIdentity's UserId (a RAM user's id, or
    the account id for the root account), or RoleId for an assumed RAM role.

    Raises ConfigError naming in_network.owner when neither can be had; a CloudError of credentials the API
    refused is raised as it is, as the run's cloud.credentials check reports it.
    """
    if config.in_network.owner:
        return Owner(config.in_network.owner, "in_network.owner")
    hint = ("set in_network.owner to the account id of the task's owner (the id DataWorks shows for a workspace "
            "member; for a RAM user its UID)")
    try:
        identity = await session.call("sts", "GetCallerIdentity", {}, region)
    except CloudError as exc:
        if is_credential_error(exc):
            raise
        raise ConfigError(f"in_network.owner is not set, and the caller's own id could not be read from STS "
                          f"GetCallerIdentity ({exc.code}: {shorten(str(exc), 200)}): {hint}",
                          field="in_network.owner") from None
    kind = str(identity.get("IdentityType") or "")
    if identity.get("UserId"):  # STS returns it for a RAM user (its own id) and the root account (the account id)
        words = IDENTITY_WORDS.get(kind, kind or "caller")
        return Owner(str(identity["UserId"]), f"STS GetCallerIdentity UserId ({words})")
    if identity.get("RoleId"):
        return Owner(str(identity["RoleId"]), "STS GetCallerIdentity RoleId (assumed RAM role)")
    raise ConfigError(f"in_network.owner is not set, and STS GetCallerIdentity named no UserId or RoleId for "
                      f"the caller (identity type {kind or 'unknown'}): {hint}", field="in_network.owner")


__all__ = ["Owner", "task_owner"]
