"""Who feeds, webhooks and deliveries are addressed to: a clinic or a prescriber, written `kind:id`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Recipient:
    """A clinic or a prescriber; `ref` is its address (`clinic:<id>`, `prescriber:<id>`) in feed items,
    webhooks and deliveries."""

    kind: str  # clinic | prescriber
    id: str

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, ref: str) -> Recipient:
        kind, _, id_ = ref.partition(":")
        return cls(kind, id_)
