"""The prescriber's page (pending dose approvals: approve up to a dose, or decline with a reason) and the operator's
audit page (a course's timeline, the course as of any event, its chain verification, its access log).

Server-rendered HTML (Jinja2, every value escaped), plain forms, no script: each page is one request and works by
keyboard and on a phone. Signing in takes the principal's API key or a one-time link (`POST /v1/sign-in-links`) and
opens a session held in the database (`page_sessions`): its cookie is HttpOnly, SameSite=Strict, Secure over https,
scoped to /pages. Every form carries a CSRF token (the session's, derived from its cookie; before a session, a
double-submit cookie), and a POST whose Origin is another site is refused. The pages are not API operations: none
is in the OpenAPI document."""

from __future__ import annotations

import functools
import json
import math
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID
from zoneinfo import ZoneInfo

import jinja2
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.response import Redirect

from scheduler.api_keys import Principal
from scheduler.application.reads import CourseFilter
from scheduler.domain.errors import DomainError
from scheduler.http.deps import Services
from scheduler.http.observe import AUTHENTICATED
from scheduler.http.problems import EXCEPTION_HANDLERS, domain_error
from scheduler.http.views import course_view, event_view
from scheduler.page_sessions import PAGE_KINDS, SESSION_SECONDS, PageSession, same_secret

PREFIX = "/pages"
SIGN_IN_PATH = f"{PREFIX}/sign-in"  # the rate limiter charges each failed sign-in to the client's address
SESSION_COOKIE = "kact_page"
SIGN_IN_COOKIE = "kact_sign_in"  # the sign-in forms' CSRF token (double submit), before there is a session
HOME = {"prescriber": f"{PREFIX}/approvals", "operator": f"{PREFIX}/audit"}
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # No script, no frames, no third party: the page's own stylesheet and forms posting to itself.
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "cache-control": "no-store",  # health data: no copies in shared or browser caches
    # A one-time link's token never leaves for another site in a Referer (`no-referrer` would also make browsers
    # send `Origin: null` with the pages' own forms, which the origin check refuses).
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


class SignInRequired(Exception):
    """No live session: the browser is sent to sign in, and back here after."""

    def __init__(self, back_to: str) -> None:
        self.back_to = back_to
        super().__init__(back_to)


class PageRefused(Exception):
    """A page request refused before any use case ran (a stale form, a foreign origin, the wrong principal)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        self.status, self.title, self.detail = status, title, detail
        super().__init__(detail)


# ------------------------------------------------------------------------------------------------ rendering


def _when(value: datetime | str | None, zone: str = "UTC") -> str:
    """An instant as a person reads it, in a clinic's zone (the `<time>` element keeps the exact instant)."""
    if value is None:
        return "—"
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    local = at.astimezone(ZoneInfo(zone))
    return local.strftime("%a %d %b %Y, %H:%M ") + (local.tzname() or zone)


def _iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _mg(value: float | None) -> str:
    return "—" if value is None else f"{value:g} mg"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@functools.cache
def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, iso=_iso, mg=_mg, num=lambda v: f"{v:g}", pretty=_pretty)
    return env


def render(name: str, **context: Any) -> str:
    return templates().get_template(name).render(**context)


def _page(name: str, status: int = 200, cookies: list[Cookie] | None = None, **context: Any) -> Response[str]:
    context.setdefault("session", None)
    context.setdefault("csrf", "")
    return Response(render(name, **context), status_code=status, media_type=MediaType.HTML,
                    headers=SECURITY_HEADERS, cookies=cookies or [])


def _redirect(to: str, cookies: list[Cookie] | None = None) -> Redirect:
    return Redirect(path=to, status_code=303, headers=SECURITY_HEADERS, cookies=cookies or [])


def _cookie(request: Request[Any, Any, Any], key: str, value: str, max_age: int) -> Cookie:
    return Cookie(key=key, value=value, max_age=max_age, path=PREFIX, httponly=True, samesite="strict",
                  secure=request.url.scheme == "https")


def _gone(request: Request[Any, Any, Any], key: str) -> Cookie:
    return Cookie(key=key, value="", max_age=0, expires=0, path=PREFIX, httponly=True, samesite="strict",
                  secure=request.url.scheme == "https")


# ------------------------------------------------------------------------------------------------ sessions


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    if services.page_sessions is None:
        raise PageRefused(503, "Pages unavailable", "this server was started without page sessions")
    return services


async def _session(request: Request[Any, Any, Any], services: Services) -> PageSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 100:
        return None
    assert services.page_sessions is not None
    session = await services.page_sessions.find(token)
    if session is not None:
        request.scope[AUTHENTICATED] = session.principal  # type: ignore[literal-required]  # the log line's principal
    return session


async def _signed_in(request: Request[Any, Any, Any], services: Services, kind: str) -> PageSession:
    session = await _session(request, services)
    if session is None:  # back to this page after signing in (a form posted with no session: to the start page)
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else "")
                             if request.method == "GET" else HOME[kind])
    if session.principal.kind != kind:
        raise PageRefused(403, "Not your page", f"this page is for the {kind}; yours is at {HOME[session.principal.kind]}")
    return session


def _same_origin(request: Request[Any, Any, Any]) -> None:
    """A browser names the page a form was posted from: another site's form is refused (SameSite covers the cookie;
    this covers the sign-in forms too)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise PageRefused(403, "Form refused", "the form was sent from another site")


async def _form(request: Request[Any, Any, Any]) -> Mapping[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _checked(request: Request[Any, Any, Any], form: Mapping[str, str], expected: str) -> None:
    _same_origin(request)
    if not expected or not same_secret(form.get("csrf", ""), expected):
        raise PageRefused(403, "Form expired", "the form is stale or was not sent from this site: reload the page "
                                               "and send it again")


def _back_to(value: str | None) -> str | None:
    """A page of ours to return to after signing in (never another site)."""
    if not value or not value.startswith(f"{PREFIX}/") or value.startswith("//") or "\\" in value:
        return None
    return value


# ------------------------------------------------------------------------------------------------ signing in


@get("/", cache=False)
async def pages_home(request: Request[Any, Any, Any]) -> Redirect:
    session = await _session(request, _services(request))
    return _redirect(HOME[session.principal.kind] if session else SIGN_IN_PATH)


def _sign_in_form(request: Request[Any, Any, Any], template: str, status: int = 200, **context: Any) -> Response[str]:
    """A sign-in form with its double-submit token (the cookie's, kept while it is there)."""
    token = request.cookies.get(SIGN_IN_COOKIE) or ""
    if not 20 <= len(token) <= 100:
        token = secrets.token_urlsafe(24)
    return _page(template, status, cookies=[_cookie(request, SIGN_IN_COOKIE, token, 3600)], csrf=token, **context)


@get("/sign-in", cache=False)
async def sign_in_form(request: Request[Any, Any, Any]) -> Response[str]:
    back_to = request.query_params.get("next")  # `next` names no Python parameter
    return _sign_in_form(request, "sign_in.html", back_to=_back_to((back_to or "")[:500]) or "", error=None)


@post("/sign-in", status_code=303)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    services = _services(request)
    form = await _form(request)
    _checked(request, form, request.cookies.get(SIGN_IN_COOKIE, ""))
    key, back_to = form.get("key", "").strip(), _back_to(form.get("next"))
    principal = await services.directory.authenticate(key) if 0 < len(key) <= 200 else None
    if principal is None:
        return _sign_in_form(request, "sign_in.html", 401, back_to=back_to or "",
                             error="That key is not valid. Paste the whole key, or ask for a new one.")
    if principal.kind not in PAGE_KINDS:
        return _sign_in_form(request, "sign_in.html", 403, back_to=back_to or "",
                             error="This is a clinic's key: these pages are for prescribers and the operator.")
    assert services.page_sessions is not None
    opened = await services.page_sessions.open(principal, key)
    return _opened(request, principal, opened.token, back_to)


def _opened(request: Request[Any, Any, Any], principal: Principal, token: str, back_to: str | None) -> Redirect:
    request.scope[AUTHENTICATED] = principal  # type: ignore[literal-required]
    return _redirect(back_to or HOME[principal.kind], cookies=[
        _cookie(request, SESSION_COOKIE, token, SESSION_SECONDS), _gone(request, SIGN_IN_COOKIE)])


@get("/sign-in/link", cache=False)
async def sign_in_link_form(request: Request[Any, Any, Any], token: str | None = None) -> Response[str]:
    """The link's page asks for a click: opening a link (a mail scanner's preview) does not use it up."""
    return _sign_in_form(request, "sign_in_link.html", token=(token or "")[:100], error=None)


@post("/sign-in/link", status_code=303)
async def sign_in_with_link(request: Request[Any, Any, Any]) -> Response[Any]:
    services = _services(request)
    form = await _form(request)
    _checked(request, form, request.cookies.get(SIGN_IN_COOKIE, ""))
    token = form.get("token", "")
    assert services.page_sessions is not None
    opened = await services.page_sessions.redeem_link(token) if 0 < len(token) <= 100 else None
    if opened is None:
        return _sign_in_form(request, "sign_in_link.html", 401, token="",
                             error="This link was used already, has expired or is not valid. Ask for a new one, or "
                                   "sign in with your key.")
    return _opened(request, opened.session.principal, opened.token, None)


@post("/sign-out", status_code=303)
async def sign_out(request: Request[Any, Any, Any]) -> Redirect:
    services = _services(request)
    session = await _session(request, services)
    form = await _form(request)
    if session is not None:
        _checked(request, form, session.csrf)
        assert services.page_sessions is not None
        await services.page_sessions.close(request.cookies[SESSION_COOKIE])
    return _redirect(SIGN_IN_PATH, cookies=[_gone(request, SESSION_COOKIE)])


# ------------------------------------------------------------------------------------------------ prescriber


@get("/approvals", cache=False)
async def approvals_page(request: Request[Any, Any, Any], decided: str | None = None) -> Response[str]:
    services = _services(request)
    session = await _signed_in(request, services, "prescriber")
    return await _approvals(request, services, session, decided=decided)


async def _approvals(request: Request[Any, Any, Any], services: Services, session: PageSession, *, status: int = 200,
                     decided: str | None = None, errors: Mapping[str, str] | None = None,
                     entered: Mapping[str, str] | None = None) -> Response[str]:
    cards = await services.desk.approvals(session.principal)
    done = await services.desk.decided(session.principal, decided[:100]) if decided else None
    shown = {card.approval.id for card in cards}
    # A refusal about an approval no longer on the page (decided meanwhile, or never this prescriber's) heads it.
    elsewhere = [message for approval_id, message in (errors or {}).items() if approval_id not in shown]
    return _page("approvals.html", status, session=session, csrf=session.csrf, cards=cards, done=done,
                 errors=errors or {}, elsewhere=elsewhere, entered=entered or {})


def _milligrams(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


@post("/approvals/{approval_id:str}/decision", status_code=303)
async def decide_approval(request: Request[Any, Any, Any], approval_id: str) -> Response[Any]:
    services = _services(request)
    session = await _signed_in(request, services, "prescriber")
    form = await _form(request)
    _checked(request, form, session.csrf)
    decision, reason = form.get("decision", ""), form.get("reason", "").strip()
    approve = decision == "approve"
    approved_mg = _milligrams(form.get("approved_mg", "")) if approve else None
    problem = None
    if decision not in ("approve", "decline"):
        problem = "Choose to approve or to decline."
    elif approve and approved_mg is None:
        problem = "Give the maximum dose in mg (a number above 0)."
    elif not approve and not reason:
        problem = "A decline gives its reason."
    elif len(reason) > 2000:
        problem = "The reason is longer than 2000 characters."
    if problem is not None:
        return await _approvals(request, services, session, status=422, errors={approval_id: problem},
                                entered={**form, "approval_id": approval_id})
    try:
        # The API's own use case: the same rules, events and access checks as POST /v1/dose-approvals/{id}/decision.
        await services.scheduling.decide_dose_approval(session.principal, approval_id, approve=approve,
                                                       now=services.clock(), approved_mg=approved_mg, reason=reason)
    except DomainError as exc:
        refusal = domain_error(request, exc)
        detail = refusal.content["detail"] if isinstance(refusal.content, dict) else str(exc)
        return await _approvals(request, services, session, status=refusal.status_code,
                                errors={approval_id: detail}, entered={**form, "approval_id": approval_id})
    return _redirect(f"{PREFIX}/approvals?decided={quote(approval_id, safe='')}")


# ------------------------------------------------------------------------------------------------ operator


@get("/audit", cache=False)
async def audit_home(request: Request[Any, Any, Any], course_id: str | None = None) -> Response[Any]:
    services = _services(request)
    session = await _signed_in(request, services, "operator")
    error = None
    course_id = course_id[:100] if course_id is not None else None
    if course_id is not None:
        try:
            return _redirect(f"{PREFIX}/audit/courses/{UUID(course_id.strip())}")
        except ValueError:
            error = "A course id looks like 6a1f7a58-5a43-4c55-9a0e-3c1f0c6c2d10."
    found = await services.reads.courses(session.principal, CourseFilter(), cursor=None, page=None, limit=25)
    return _page("audit_home.html", 422 if error else 200, session=session, csrf=session.csrf, courses=found.rows,
                 error=error, entered=course_id or "")


@get("/audit/courses/{course_id:uuid}", cache=False)
async def audit_course(request: Request[Any, Any, Any], course_id: UUID) -> Response[str]:
    services = _services(request)
    session = await _signed_in(request, services, "operator")
    timeline = await services.course_audit.timeline(session.principal, course_id)
    return _page("audit_course.html", session=session, csrf=session.csrf, course_id=course_id,
                 events=[event_view(e) for e in timeline.events], chain=timeline.chain, access=timeline.access)


@get("/audit/courses/{course_id:uuid}/versions/{version:int}", cache=False)
async def audit_course_at(request: Request[Any, Any, Any], course_id: UUID, version: int) -> Response[str]:
    services = _services(request)
    session = await _signed_in(request, services, "operator")
    if not 1 <= version <= 2**31 - 1:
        raise PageRefused(404, "No such version", f"course {course_id} has no event {version}")
    course, latest = await services.course_audit.course_at(session.principal, course_id, version)
    if course.version < version:
        raise PageRefused(404, "No such version", f"course {course_id} has {course.version} events, not {version}")
    return _page("audit_course_at.html", session=session, csrf=session.csrf, course=course_view(course),
                 as_of=version, latest=latest)


# ------------------------------------------------------------------------------------------------ static, errors


@functools.cache
def _stylesheet() -> bytes:
    return (HERE / "static" / "pages.css").read_bytes()


@get("/static/pages.css", cache=False)
async def stylesheet() -> Response[bytes]:
    return Response(_stylesheet(), media_type="text/css; charset=utf-8",
                    headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"})


def _error_page(request: Request[Any, Any, Any], status: int, title: str, detail: str) -> Response[str]:
    return _page("error.html", status, title=title, detail=detail, home=SIGN_IN_PATH)


def _sign_in_first(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    return _redirect(f"{SIGN_IN_PATH}?next={quote(exc.back_to, safe='/')}")


def _refused(request: Request[Any, Any, Any], exc: PageRefused) -> Response[str]:
    return _error_page(request, exc.status, exc.title, exc.detail)


def _as_html(problem_of: Callable[[Request[Any, Any, Any], Any], Response[Any]]) -> Callable[..., Response[str]]:
    """The API's mapping of an error (the one in `problems`), shown as a page: the same status, title and detail."""
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        problem = problem_of(request, exc)
        body = problem.content if isinstance(problem.content, dict) else {}
        return _error_page(request, problem.status_code, str(body.get("title", "Error")),
                           str(body.get("detail", "")))
    return handler


def router() -> Router:
    return Router(
        path=PREFIX,
        route_handlers=[pages_home, sign_in_form, sign_in, sign_in_link_form, sign_in_with_link, sign_out,
                        approvals_page, decide_approval, audit_home, audit_course, audit_course_at, stylesheet],
        include_in_schema=False,
        exception_handlers={**{cls: _as_html(fn) for cls, fn in EXCEPTION_HANDLERS.items()},
                            SignInRequired: _sign_in_first, PageRefused: _refused},
    )
