"""Minimum necessary on the bus: everything on NATS during a whole course, and not one name, contact or note."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import timedelta
from typing import Self

import httpx
import nats
import pytest
from api_support import Tenant, medicine_record, ok
from bus_support import validator

pytestmark = pytest.mark.integration

PARTNER_A, PARTNER_B = "Alice Liddell", "Bob Marley"
CONTACT = "alice.liddell@example.org +49 30 1234567"
NOTE = "disclosed childhood trauma"
REQUEST_ID = "req-stays-in-the-store-7f3a"
SECRETS = (PARTNER_A, PARTNER_B, CONTACT, NOTE, "calm session", "screening note", "nausea after dose",
           "too costly")


class Tap:
    """A core NATS subscription to every subject (`>`): JetStream traffic, acks and API calls included."""

    def __init__(self, url: str) -> None:
        self.url, self.messages = url, []
        self.ready, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        nc = await nats.connect(self.url)

        async def keep(msg: nats.aio.msg.Msg) -> None:
            self.messages.append((msg.subject, repr(msg.headers).encode(), msg.data, dict(msg.headers or {})))

        await nc.subscribe(">", cb=keep)
        await nc.flush()
        self.ready.set()
        while not self.done.is_set():
            await asyncio.sleep(0.05)
        await nc.flush()
        await nc.close()

    def __enter__(self) -> Self:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)


def test_a_whole_course_on_the_bus_carries_no_name_contact_or_note(live_server) -> None:
    settings = live_server.settings
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client, Tap(settings.nats_url or "") as tap:
        home = Tenant.onboard(client, live_server.operator_token)
        home.headers["X-Request-Id"] = REQUEST_ID  # kept with each event in the store, never on the bus
        course = home.open_course(partners={"a": f"{PARTNER_A} <{CONTACT}>", "b": PARTNER_B})
        cid = course["id"]
        first_day = home.assess_and_prepare(cid)
        medicine = home.book(cid, "medicine", first_day, hours=3)
        the_day_before = first_day - timedelta(days=1)
        approval = ok(home.post(f"/v1/courses/{cid}/dose-approvals",
                                {"session_id": medicine["id"], "partner": "a",
                                 "prescriber_id": home.prescriber["id"], "requested_mg": 100}, at=the_day_before), 201)
        decided = ok(client.post(f"/v1/dose-approvals/{approval['id']}/decision",
                                 json={"approve": True, "reason": f"fine; {NOTE}"},
                                 headers={**home.rx_headers, "X-Kact-Now": the_day_before.isoformat()}), 200)
        record = medicine_record({"a": decided}, first_day + timedelta(minutes=10), 100)
        record["adverse_events"] = [{"partner": "a", "at": record["doses"][0]["at"], "kind": "nausea",
                                     "severity": "mild", "note": "nausea after dose"}]
        home.hold(cid, medicine, **record)
        ok(home.post(f"/v1/courses/{cid}/discontinue", {"reason": "too costly"}), 200)
        history = ok(client.get(f"/v1/courses/{cid}/events", headers=home.headers), 200)
        asyncio.run(_until_discontinued(settings, cid))  # the course's last event went past on the bus
    # The tap sees each event published by the relay and again as delivered to the notifier's pull consumer.
    ours = [(subject, data) for subject, _, data, _ in tap.messages
            if subject.startswith(f"{settings.nats_prefix}.course.{cid}.")]
    # Headers: the message id, the stream it is for (nats-py's) and the trace context, nothing else (the request id
    # stays in the event store).
    our_headers = [headers for subject, _, _, headers in tap.messages
                   if subject.startswith(f"{settings.nats_prefix}.course.{cid}.")]
    assert our_headers and all(set(h) - {"Nats-Expected-Stream"} == {"Nats-Msg-Id", "traceparent"}
                               for h in our_headers), our_headers
    assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", h["traceparent"]) for h in our_headers)
    published = [e for e in history if e["type"] != "ScreeningRecorded"]
    assert len({json.loads(data)["id"] for _, data in ours}) == len(published) >= 19  # it saw every event
    everything = b"\n".join(b" ".join((subject.encode(), headers, data)) for subject, headers, data, _ in tap.messages)
    for secret in SECRETS:
        assert secret in repr(history) or secret in (CONTACT, PARTNER_A, PARTNER_B), secret
        assert secret.encode() not in everything, f"{secret!r} went over NATS"
    assert REQUEST_ID.encode() not in everything
    for _, data in ours:  # and what went out is exactly what the contract allows
        document = json.loads(data)
        validator(document["type"]).validate(document)


async def _until_discontinued(settings, course_id: str) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        subject = f"{settings.nats_prefix}.course.{course_id}.discontinued.v1"
        for _ in range(300):
            try:
                await js.get_last_msg(settings.nats_stream, subject)
                return
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        raise AssertionError("the course's last event never reached the stream")
    finally:
        await nc.close()
