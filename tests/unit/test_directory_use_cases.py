"""The directory's, keys' and webhooks' use cases without a server: who manages what, and the look-ups that make a
request valid, over a directory of plain dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from kact_contracts.feed import Recipient
from notifier.admin import Delivery

from scheduler.api_keys import OPERATOR, Principal
from scheduler.application.access import managed_owner
from scheduler.application.directory import Clinics
from scheduler.application.errors import (
    AlreadyRedrivenError,
    DeliveryNotFailedError,
    ForbiddenError,
    NotFoundError,
    UnknownReferenceError,
    WebhookDisabledError,
)
from scheduler.application.keys import Keys
from scheduler.application.notifications import Notifications
from scheduler.domain.errors import InvalidCommandError
from scheduler.http.problems import domain_error

Row = dict[str, Any]


class FakeDirectory:
    """Clinics and clinicians in dicts; partnerships and closures as the last call left them."""

    def __init__(self) -> None:
        self.clinics: dict[UUID, Row] = {}
        self.staff: dict[str, Row] = {}
        self.consents: list[tuple[UUID, UUID, list[str]]] = []
        self.log: list[tuple[str, str]] = []
        self.reads: list[tuple[str, str, list[UUID | None], str]] = []  # (principal, action, courses, outcome)

    def add_clinic(self) -> tuple[UUID, UUID, UUID]:
        """A clinic with a therapist and a prescriber."""
        clinic, therapist, prescriber = uuid4(), uuid4(), uuid4()
        self.clinics[clinic] = {"id": clinic, "name": "Clinic", "timezone": "Europe/Berlin"}
        self.staff[str(therapist)] = {"id": therapist, "clinic_id": clinic, "role": "therapist"}
        self.staff[str(prescriber)] = {"id": prescriber, "clinic_id": clinic, "role": "prescriber"}
        return clinic, therapist, prescriber

    async def log_access(self, principal: Principal, action: str, course_id: UUID | None) -> None:
        self.log.append((principal.ref, action))

    async def log_reads(self, principal: Principal, action: str, course_ids: Sequence[UUID | None], *,
                        outcome: str = "ok", request_id: str | None = None) -> None:
        self.log.append((principal.ref, action))
        self.reads.append((principal.ref, action, list(course_ids), outcome))

    async def clinic(self, clinic_id: UUID) -> Row | None:
        return self.clinics.get(clinic_id)

    async def clinicians(self, ids: list[UUID]) -> dict[str, Row]:
        return {str(i): self.staff[str(i)] for i in ids if str(i) in self.staff}

    async def prescriber_ids(self, clinic_id: UUID) -> list[str]:
        return [str(s["id"]) for s in self.staff.values() if s["clinic_id"] == clinic_id and s["role"] == "prescriber"]

    async def hours_history(self, owner: str, owner_id: UUID) -> list[Row]:
        return []

    async def lift_closure(self, clinic_id: UUID, closure_id: UUID, by: Principal) -> bool:
        return False

    async def consent_to_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, kinds: list[str],
                                     by: Principal) -> Row:
        self.consents.append((clinic_id, partner_clinic_id, kinds))
        return {"clinic_id": clinic_id, "partner_clinic_id": partner_clinic_id, "state": "proposed"}

    async def end_partnership(self, clinic_id: UUID, partner_clinic_id: UUID, reason: str,
                              by: Principal) -> Row | None:
        return None


def clinic_key(clinic: UUID) -> Principal:
    return Principal("clinic", str(clinic), str(clinic))


def prescriber_key(prescriber: UUID, clinic: UUID) -> Principal:
    return Principal("prescriber", str(prescriber), str(clinic))


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


# Who manages a clinic or a prescriber -------------------------------------------------------------------------


async def test_the_operator_and_the_clinic_manage_the_clinic_and_its_prescriber(directory: FakeDirectory) -> None:
    clinic, _, prescriber = directory.add_clinic()
    for principal in (OPERATOR, clinic_key(clinic)):
        assert await managed_owner(directory, principal, "clinic", clinic) == str(clinic)
        assert await managed_owner(directory, principal, "prescriber", prescriber) == str(prescriber)
    assert await managed_owner(directory, prescriber_key(prescriber, clinic), "prescriber",
                               prescriber) == str(prescriber)


async def test_to_anyone_else_the_owner_does_not_exist(directory: FakeDirectory) -> None:
    clinic, therapist, prescriber = directory.add_clinic()
    other, _, other_prescriber = directory.add_clinic()
    refused = [
        (clinic_key(other), "clinic", clinic),
        (clinic_key(other), "prescriber", prescriber),
        (prescriber_key(prescriber, clinic), "clinic", clinic),  # a prescriber does not manage its clinic
        (prescriber_key(other_prescriber, other), "prescriber", prescriber),
        (OPERATOR, "prescriber", therapist),  # a therapist holds no keys or webhooks
        (OPERATOR, "clinic", uuid4()),
    ]
    for principal, kind, owner in refused:
        with pytest.raises(NotFoundError) as refusal:
            await managed_owner(directory, principal, kind, owner)
        assert str(refusal.value) == f"no {kind} {owner}"


async def test_only_the_operator_onboards_a_clinic(directory: FakeDirectory) -> None:
    clinic, _, _ = directory.add_clinic()
    with pytest.raises(ForbiddenError, match="only the operator onboards clinics"):
        await Clinics(directory).create_clinic(clinic_key(clinic), "Another", "Europe/Berlin")  # type: ignore[arg-type]


async def test_working_hours_are_the_clinics_and_the_operators(directory: FakeDirectory) -> None:
    clinic, therapist, prescriber = directory.add_clinic()
    other, _, _ = directory.add_clinic()
    clinics = Clinics(directory)  # type: ignore[arg-type]
    assert await clinics.working_hours(clinic_key(clinic), therapist) == []
    assert await clinics.working_hours(OPERATOR, prescriber) == []
    for principal in (clinic_key(other), prescriber_key(prescriber, clinic)):
        with pytest.raises(NotFoundError, match=f"no clinician {therapist}"):
            await clinics.working_hours(principal, therapist)


async def test_lifting_an_unknown_closure_is_not_found(directory: FakeDirectory) -> None:
    clinic, _, _ = directory.add_clinic()
    closure = uuid4()
    with pytest.raises(NotFoundError, match=f"no closure {closure}"):
        await Clinics(directory).lift_closure(clinic_key(clinic), clinic, closure)  # type: ignore[arg-type]


# Partnerships -------------------------------------------------------------------------------------------------


async def test_a_clinic_consents_to_partner_with_another_known_clinic(directory: FakeDirectory) -> None:
    clinic, _, _ = directory.add_clinic()
    partner, _, _ = directory.add_clinic()
    consented = await Clinics(directory).consent_to_partnership(  # type: ignore[arg-type]
        clinic_key(clinic), partner, ["medicine"])
    assert consented["state"] == "proposed" and directory.consents == [(clinic, partner, ["medicine"])]


async def test_consent_is_refused_to_oneself_an_unknown_clinic_and_any_other_key(directory: FakeDirectory) -> None:
    clinic, _, prescriber = directory.add_clinic()
    partner, _, _ = directory.add_clinic()
    clinics = Clinics(directory)  # type: ignore[arg-type]
    with pytest.raises(InvalidCommandError, match="a clinic cannot partner with itself"):
        await clinics.consent_to_partnership(clinic_key(clinic), clinic, ["medicine"])
    unknown = uuid4()
    with pytest.raises(UnknownReferenceError, match=f"no clinic {unknown}"):
        await clinics.consent_to_partnership(clinic_key(clinic), unknown, ["medicine"])
    for principal in (OPERATOR, prescriber_key(prescriber, clinic)):
        with pytest.raises(ForbiddenError, match="a clinic's key consents to or ends a partnership"):
            await clinics.consent_to_partnership(principal, partner, ["medicine"])
        with pytest.raises(ForbiddenError):
            await clinics.end_partnership(principal, partner, "moved")
    assert directory.consents == []


async def test_ending_a_partnership_that_never_was_is_not_found(directory: FakeDirectory) -> None:
    clinic, _, _ = directory.add_clinic()
    partner = uuid4()
    with pytest.raises(NotFoundError, match=f"no partnership with clinic {partner}"):
        await Clinics(directory).end_partnership(clinic_key(clinic), partner, "moved")  # type: ignore[arg-type]


# Keys ---------------------------------------------------------------------------------------------------------


class FakeKeys:
    def __init__(self) -> None:
        self.rows: dict[UUID, Row] = {}
        self.revoked: list[UUID] = []

    async def get(self, key_id: UUID) -> Row | None:
        return self.rows.get(key_id)

    async def revoke(self, key_id: UUID, by: Principal) -> Row | None:
        self.revoked.append(key_id)
        return self.rows[key_id]


async def test_a_key_is_revoked_by_whoever_manages_its_owner_and_is_unknown_to_others(
        directory: FakeDirectory) -> None:
    clinic, _, prescriber = directory.add_clinic()
    other, _, _ = directory.add_clinic()
    store, key_id = FakeKeys(), uuid4()
    store.rows[key_id] = {"kind": "prescriber", "principal_id": prescriber, "clinic_id": clinic}
    keys = Keys(directory, store)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match=f"no key {key_id}"):
        await keys.revoke(clinic_key(other), key_id)
    await keys.revoke(clinic_key(clinic), key_id)
    assert store.revoked == [key_id]


# Webhooks and deliveries --------------------------------------------------------------------------------------


def delivery(recipient: Recipient, status: str) -> Delivery:
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return Delivery(id=uuid4(), webhook_id=uuid4(), recipient=recipient, event_id="e", event_type="t",
                    feed_position=1, status=status, attempts=8, next_attempt_at=None, last_error=None,
                    created_at=at, delivered_at=None)


class FakeNotifier:
    """Deliveries in a dict; a redrive succeeds unless the webhook was disabled."""

    def __init__(self, *deliveries: Delivery, webhook_enabled: bool = True) -> None:
        self.deliveries = {d.id: d for d in deliveries}
        self.webhook_enabled = webhook_enabled

    async def delivery(self, recipients: list[Recipient] | None, delivery_id: UUID) -> Delivery | None:
        found = self.deliveries.get(delivery_id)
        return found if found and (recipients is None or found.recipient in recipients) else None

    async def redrive_delivery(self, delivery_id: UUID) -> bool:
        return self.webhook_enabled


async def test_a_failed_delivery_is_redriven_by_the_clinic_that_sees_it(directory: FakeDirectory) -> None:
    clinic, _, prescriber = directory.add_clinic()
    other, _, _ = directory.add_clinic()
    failed, pending = (delivery(Recipient("prescriber", str(prescriber)), s) for s in ("failed", "pending"))

    def notifications(webhook_enabled: bool = True) -> Notifications:
        notifier = FakeNotifier(failed, pending, webhook_enabled=webhook_enabled)
        return Notifications(directory, notifier, allow_private=False)  # type: ignore[arg-type]

    assert await notifications().redrive(clinic_key(clinic), failed.id) == failed
    with pytest.raises(NotFoundError, match=f"no delivery {failed.id}"):
        await notifications().redrive(clinic_key(other), failed.id)
    with pytest.raises(ForbiddenError):  # the prescriber sees it, but does not redrive it
        await notifications().redrive(prescriber_key(prescriber, clinic), failed.id)
    with pytest.raises(DeliveryNotFailedError, match="is pending"):
        await notifications().redrive(OPERATOR, pending.id)
    with pytest.raises(WebhookDisabledError):
        await notifications(webhook_enabled=False).redrive(OPERATOR, failed.id)


@pytest.mark.parametrize(("url", "refusal"), [
    ("ftp://clinic.example/hook", "url must be an absolute http or https URL"),
    ("https://clinic.example:99999/hook", "url: Port out of range 0-65535"),
    ("http://localhost:8080/hook", "url: localhost is not a public address"),
    ("http://10.0.0.7/hook", "url: 10.0.0.7 is not a public address"),
])
async def test_a_webhook_url_is_an_absolute_public_http_url(directory: FakeDirectory, url: str, refusal: str) -> None:
    clinic, _, _ = directory.add_clinic()
    notifications = Notifications(directory, FakeNotifier(), allow_private=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidCommandError, match=refusal):
        await notifications.create_webhook(clinic_key(clinic), "clinic", clinic, url, [])


# The HTTP answers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "status", "slug", "detail"), [
    (NotFoundError("clinic", "c1"), 404, "not-found", "no clinic c1"),
    (NotFoundError("partnership with clinic", "c2"), 404, "not-found", "no partnership with clinic c2"),
    (DeliveryNotFailedError(UUID(int=1), "pending"), 409, "delivery-not-failed",
     f"delivery {UUID(int=1)} is pending"),
    (AlreadyRedrivenError(7), 409, "already-redriven", "dead letter 7 was processed"),
    (WebhookDisabledError(UUID(int=1)), 409, "webhook-disabled",
     f"delivery {UUID(int=1)} belongs to a disabled webhook (or was redriven meanwhile)"),
])
def test_the_errors_answer_as_before(error: Exception, status: int, slug: str, detail: str) -> None:
    response = domain_error(SimpleNamespace(), error)  # type: ignore[arg-type]
    answer = response.content
    assert (response.status_code, answer["type"], answer["detail"]) == (status, f"/problems/{slug}", detail)


# Feeds and dead letters ------------------------------------------------------------------------------------------


class FeedNotifier:
    """One page per feed asked for; dead letters by id."""

    def __init__(self) -> None:
        self.asked: list[Recipient] = []
        course = uuid4()
        self.course = course
        self.letters = {1: SimpleNamespace(id=1, redriven_at=None, payload=f'{{"courseid": "{course}"}}'),
                        2: SimpleNamespace(id=2, redriven_at="then", payload="not json")}

    async def feed(self, recipient: Recipient, after: int, limit: int) -> Any:
        self.asked.append(recipient)
        return SimpleNamespace(items=[], has_more=False)

    async def dead_letters(self, pending: bool, limit: int, offset: int) -> list[Any]:
        return list(self.letters.values())

    async def request_dead_letter_redrive(self, dead_letter_id: int) -> Any:
        return self.letters.get(dead_letter_id)


async def test_each_reads_its_own_feed_and_the_operator_names_one(directory: FakeDirectory) -> None:
    clinic, _, prescriber = directory.add_clinic()
    notifier = FeedNotifier()
    use = Notifications(directory, notifier, allow_private=False)  # type: ignore[arg-type]
    own = Principal("clinic", str(clinic), str(clinic))
    assert (await use.feed(own, None, 0, 10))[0] == Recipient("clinic", str(clinic))
    rx = Principal("prescriber", str(prescriber), str(clinic))
    assert (await use.feed(rx, f"prescriber:{prescriber}", 0, 10))[0] == Recipient("prescriber", str(prescriber))
    with pytest.raises(NotFoundError):  # another's feed does not exist for it
        await use.feed(own, f"prescriber:{prescriber}", 0, 10)
    with pytest.raises(InvalidCommandError):  # the operator says whose
        await use.feed(OPERATOR, None, 0, 10)
    assert (await use.feed(OPERATOR, f"clinic:{clinic}", 0, 10))[0] == Recipient("clinic", str(clinic))
    assert notifier.asked == [Recipient("clinic", str(clinic)), Recipient("prescriber", str(prescriber)),
                              Recipient("clinic", str(clinic))]
    # Every read attributable, refused ones too (another's feed: denied; a bad request: failed).
    assert [(who, action, outcome) for who, action, _, outcome in directory.reads] == [
        (own.ref, "read_feed", "ok"), (rx.ref, "read_feed", "ok"), (own.ref, "read_feed", "denied"),
        (OPERATOR.ref, "read_feed", "failed"), (OPERATOR.ref, "read_feed", "ok")]


async def test_dead_letters_are_the_operators_and_redriven_once(directory: FakeDirectory) -> None:
    clinic, _, _ = directory.add_clinic()
    notifier = FeedNotifier()
    use = Notifications(directory, notifier, allow_private=False)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await use.dead_letters(Principal("clinic", str(clinic), str(clinic)), True, 10, 0)
    assert len(await use.dead_letters(OPERATOR, True, 10, 0)) == 2
    # A clinic asking is refused and logged so; the operator's read names the course a readable letter carries.
    assert [(action, courses, outcome) for _, action, courses, outcome in directory.reads] == [
        ("list_dead_letters", [None], "denied"), ("list_dead_letters", [notifier.course], "ok")]
    assert (await use.redrive_dead_letter(OPERATOR, 1)).id == 1
    with pytest.raises(AlreadyRedrivenError):
        await use.redrive_dead_letter(OPERATOR, 2)
    with pytest.raises(NotFoundError):
        await use.redrive_dead_letter(OPERATOR, 3)
