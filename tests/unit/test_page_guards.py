"""The pages' guards on their own: failed sign-ins cost the client's address (as unknown keys do), forms pass the
body guard only under /pages/, a page never sends the browser to another site after signing in, and the templates
escape what they show and render the chain verification's three states."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from scheduler.application.course_audit import ChainStatus, chain_status
from scheduler.http.body_guard import body_guard
from scheduler.http.pages import _back_to, render
from scheduler.http.ratelimit import UNKNOWN_KEY_BURST, RateLimits, rate_limiting
from scheduler.readmodels.access_log import AccessRow

pytestmark = pytest.mark.timeout(30)


class Answering:
    """An app that answers every request with `status` and counts them."""

    def __init__(self, status: int) -> None:
        self.status, self.calls = status, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})


async def call(app: Any, method: str, path: str, body: bytes = b"", content_type: bytes = b"") -> int:
    headers = [(b"content-length", str(len(body)).encode())] + ([(b"content-type", content_type)] if content_type else [])
    scope = {"type": "http", "method": method, "path": path, "headers": headers, "client": ("192.0.2.9", 1),
             "app": SimpleNamespace(state=SimpleNamespace(services=None))}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


async def test_failed_sign_ins_are_charged_to_the_address_then_refused_before_the_form_is_read() -> None:
    page = Answering(401)
    app = rate_limiting(RateLimits.configure(10, 20, 100, 100))(page)
    statuses = [await call(app, "POST", "/pages/sign-in") for _ in range(UNKNOWN_KEY_BURST)]
    assert statuses == [401] * UNKNOWN_KEY_BURST
    assert await call(app, "POST", "/pages/sign-in/link") == 429  # the link form shares the allowance
    assert page.calls == UNKNOWN_KEY_BURST
    assert await call(app, "GET", "/pages/sign-in") == 401  # showing the form costs nothing (no lookup)


async def test_successful_sign_ins_cost_nothing() -> None:
    page = Answering(303)
    app = rate_limiting(RateLimits.configure(10, 20, 100, 100))(page)
    assert {await call(app, "POST", "/pages/sign-in") for _ in range(UNKNOWN_KEY_BURST + 5)} == {303}


async def test_a_form_passes_the_body_guard_under_pages_only() -> None:
    page = Answering(200)
    guard = body_guard(1024)(page)
    form = b"csrf=x&decision=approve&approved_mg=80"
    assert await call(guard, "POST", "/pages/approvals/a/decision", form, b"application/x-www-form-urlencoded") == 200
    assert await call(guard, "POST", "/v1/courses", form, b"application/x-www-form-urlencoded") == 415
    assert await call(guard, "POST", "/pages/sign-in", b"k=" + b"x" * 2000, b"application/x-www-form-urlencoded") == 413
    assert page.calls == 1


@pytest.mark.parametrize("asked, kept", [
    ("/pages/approvals?decided=apr_1", "/pages/approvals?decided=apr_1"),
    ("/pages/audit/courses/x", "/pages/audit/courses/x"),
    ("https://evil.example/pages/", None), ("//evil.example/pages/", None), ("/v1/courses", None),
    ("/pages\\@evil.example", None), ("", None), (None, None),
])
def test_after_signing_in_the_browser_returns_only_to_a_page_of_ours(asked: str | None, kept: str | None) -> None:
    assert _back_to(asked) == kept


def _timeline(chain: ChainStatus | None, access: list[AccessRow]) -> str:
    return render("audit_course.html", session=None, csrf="", course_id=uuid4(), events=[], chain=chain,
                  access=access)


def test_the_audit_page_says_not_verified_until_the_chain_is_wired_and_shows_either_verdict() -> None:
    assert chain_status(uuid4()) is None  # the placeholder the tamper-evidence work replaces
    assert "Not verified." in _timeline(None, [])
    at = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    verified = _timeline(ChainStatus(True, "every event links to the one before", at, 42), [])
    assert "Verified." in verified and "42 events" in verified and "Not verified" not in verified
    broken = _timeline(ChainStatus(False, "event #7 <b>does not</b> link to #6"), [])
    assert "Verification failed." in broken and "&lt;b&gt;does not&lt;/b&gt;" in broken


def test_the_access_log_shows_an_outcome_column_only_where_the_log_has_one() -> None:
    at = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    without = _timeline(None, [AccessRow(at, "operator:root", "read_history", None)])
    assert "read_history" in without and "Outcome" not in without
    with_outcome = _timeline(None, [AccessRow(at, "clinic:c1", "read_course", "refused"),
                                    AccessRow(at, "operator:root", "read_history", None)])
    assert "<th scope=\"col\">Outcome</th>" in with_outcome and "<td>refused</td>" in with_outcome
