"""The API keys of clinics and prescribers: listed, issued and revoked by whoever manages their owner."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from scheduler.api_keys import Principal
from scheduler.application.access import managed_owner, manages
from scheduler.application.errors import NotFoundError
from scheduler.application.handlers import Directory

Row = dict[str, Any]


class KeyStore(Protocol):
    async def owned_by(self, kind: str, principal_id: UUID) -> list[Row]: ...

    async def issue(self, kind: str, principal_id: UUID, clinic_id: UUID, by: Principal,
                    label: str | None = None) -> tuple[Row, str]: ...

    async def get(self, key_id: UUID) -> Row | None: ...

    async def revoke(self, key_id: UUID, by: Principal) -> Row | None: ...


class Keys:
    """API keys of a clinic or a prescriber; to whoever does not manage the owner, neither it nor its keys exist."""

    def __init__(self, directory: Directory, keys: KeyStore) -> None:
        self.directory, self.keys = directory, keys

    async def owned_by(self, principal: Principal, kind: str, owner_id: UUID) -> list[Row]:
        """The owner's keys, revoked ones included (never their secrets)."""
        await managed_owner(self.directory, principal, kind, owner_id)
        return await self.keys.owned_by(kind, owner_id)

    async def issue(self, principal: Principal, kind: str, owner_id: UUID, label: str | None) -> tuple[Row, str]:
        """A new key for the owner, and its secret (shown only now)."""
        await managed_owner(self.directory, principal, kind, owner_id)
        if kind == "clinic":
            clinic_id = owner_id
        else:
            clinic_id = (await self.directory.clinicians([owner_id]))[str(owner_id)]["clinic_id"]
        return await self.keys.issue(kind, owner_id, clinic_id, principal, label)

    async def revoke(self, principal: Principal, key_id: UUID) -> None:
        """Revoke a key; revoking a revoked one changes nothing."""
        row = await self.keys.get(key_id)
        if row is None or not manages(principal, row["kind"], str(row["principal_id"]), str(row["clinic_id"])):
            raise NotFoundError("key", key_id)
        await self.keys.revoke(key_id, principal)
