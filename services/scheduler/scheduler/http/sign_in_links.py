"""One-time sign-in links to the prescriber's and the operator's pages, asked for with the principal's own key.

Why the scheduler issues them, not the notifier's webhook: a notice is stored as it is sent (the feed, the delivery
log, every retry's body), so a token in it would sit there readable, and a retried or reminded notice would carry a
spent or expired one. Asked for at the moment a person is to click, by the system that received the
`dose_approval_request` notice and knows who that person is, the link exists only in this response (the database
keeps its hash), lasts 15 minutes and signs in once."""

from __future__ import annotations

from typing import Any

from litestar import Request, post

from scheduler.application.errors import ForbiddenError
from scheduler.directory import Principal
from scheduler.http.deps import Services, bearer_token
from scheduler.http.schemas import SignInLink
from scheduler.page_sessions import LINK_SECONDS, PAGE_KINDS

LINK_PATH = "/pages/sign-in/link"


@post("/v1/sign-in-links", operation_id="createSignInLink", tags=["pages"], status_code=201,
      summary="A one-time link that signs this prescriber (or the operator) in to their page")
async def create_sign_in_link(request: Request[Any, Any, Any], principal: Principal, services: Services) -> SignInLink:
    if principal.kind not in PAGE_KINDS:
        raise ForbiddenError("sign-in links open the prescriber's and the operator's pages; a clinic has none")
    key = bearer_token(request.scope["headers"])
    assert key is not None and services.page_sessions is not None  # the principal was authenticated with it
    token, expires_at = await services.page_sessions.issue_link(principal, key)
    path = f"{LINK_PATH}?token={token}"
    return SignInLink(url=f"{str(request.base_url).rstrip('/')}{path}", path=path, expires_at=expires_at,
                      valid_seconds=LINK_SECONDS)
