"""The prescriber's and the operator's pages over HTTP: signing in (a key, a one-time link), the session cookie,
CSRF, escaping, deciding through the API's use case, and every page read in the access log. The same pages in a
browser: test_pages_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from api_support import bearer, ok
from conftest import LiveServer
from pages_support import Waiting, csrf_in, sign_in, waiting_course
from psycopg import sql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def browser_like(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client that keeps cookies and does not follow redirects (each hop is checked)."""
    with httpx.Client(base_url=live_server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def waiting(client: httpx.Client, live_server: LiveServer) -> Waiting:
    return waiting_course(client, live_server.operator_token)


def set_cookie(response: httpx.Response, name: str) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return header


def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back(browser_like: httpx.Client,
                                                                       waiting: Waiting) -> None:
    answer = browser_like.get("/pages/approvals?decided=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/pages/sign-in?next=/pages/approvals%3Fdecided%3Dx"
    form = browser_like.get(answer.headers["location"])
    assert 'name="next" value="/pages/approvals?decided=x"' in form.text
    signed_in = browser_like.post("/pages/sign-in", data={
        "key": waiting.prescriber_key, "csrf": csrf_in(form.text), "next": "/pages/approvals?decided=x"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/pages/approvals?decided=x"
    # another site is never a place to return to
    form = browser_like.get("/pages/sign-in?next=https://evil.example/")
    assert 'name="next" value=""' in form.text
    # /pages itself leads to the principal's own page
    assert browser_like.get("/pages").headers["location"] == "/pages/approvals"
    browser_like.cookies.clear()
    assert browser_like.get("/pages").headers["location"] == "/pages/sign-in"


def test_the_session_cookie_is_http_only_strict_and_secure_over_https(browser_like: httpx.Client,
                                                                      waiting: Waiting) -> None:
    answer = sign_in(browser_like, waiting.prescriber_key)
    assert answer.status_code == 303 and answer.headers["location"] == "/pages/approvals"
    cookie = set_cookie(answer, "kact_page")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/pages" in cookie
    assert "Max-Age=28800" in cookie and "Secure" not in cookie  # plain http here (a browser would drop it)
    # behind a proxy that terminated TLS (uvicorn trusts X-Forwarded-Proto from loopback), the cookies are Secure
    https = {"X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=str(browser_like.base_url), timeout=30) as proxied:
        form = proxied.get("/pages/sign-in", headers=https)
        assert "Secure" in set_cookie(form, "kact_sign_in")
        token = csrf_in(form.text)
        proxied.cookies.clear()  # httpx keeps a Secure cookie for https: it is sent as the browser would send it
        answer = proxied.post("/pages/sign-in", data={"key": waiting.prescriber_key, "csrf": token},
                              headers={**https, "Cookie": f"kact_sign_in={token}"})
        assert answer.status_code == 303 and "Secure" in set_cookie(answer, "kact_page")
    # the cookie holds an opaque token: nothing of the key, the principal or the session in it
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert waiting.prescriber_key not in value and waiting.tenant.prescriber["id"] not in value
    page = browser_like.get("/pages/approvals")
    assert page.status_code == 200 and "Dose approvals" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "script" not in page.text.lower()  # the pages run no script at all


def test_a_wrong_or_clinic_key_does_not_sign_in(browser_like: httpx.Client, waiting: Waiting) -> None:
    refused = sign_in(browser_like, "kact_rx_not-a-key")
    assert refused.status_code == 401 and "That key is not valid" in refused.text
    clinic = sign_in(browser_like, waiting.tenant.clinic["api_key"])
    assert clinic.status_code == 403 and "clinic" in clinic.text
    assert "kact_page" not in browser_like.cookies
    assert browser_like.get("/pages/approvals").status_code == 303


def test_forms_without_their_csrf_token_or_from_another_site_are_refused(browser_like: httpx.Client,
                                                                         waiting: Waiting) -> None:
    # the sign-in form: its token must match the cookie the form came with
    browser_like.get("/pages/sign-in")
    refused = browser_like.post("/pages/sign-in", data={"key": waiting.prescriber_key, "csrf": "forged"})
    assert refused.status_code == 403 and "kact_page" not in browser_like.cookies
    assert sign_in(browser_like, waiting.prescriber_key).status_code == 303
    approval = waiting.approvals["a"]["id"]
    page = browser_like.get("/pages/approvals")
    token = csrf_in(page.text)
    decision = {"decision": "approve", "approved_mg": "50", "reason": ""}
    assert browser_like.post(f"/pages/approvals/{approval}/decision", data=decision).status_code == 403
    assert browser_like.post(f"/pages/approvals/{approval}/decision", data={**decision, "csrf": "x" * 64}
                             ).status_code == 403
    assert browser_like.post(f"/pages/approvals/{approval}/decision", data={**decision, "csrf": token},
                             headers={"Origin": "https://evil.example"}).status_code == 403
    assert waiting.approval("a")["status"] == "pending"
    # the form as the page gave it
    done = browser_like.post(f"/pages/approvals/{approval}/decision", data={**decision, "csrf": token},
                             headers={"Origin": str(browser_like.base_url).rstrip("/")})
    assert done.status_code == 303 and waiting.approval("a")["status"] == "approved"


def test_the_prescriber_decides_through_the_apis_use_case_and_the_page_shows_the_outcome(
        browser_like: httpx.Client, waiting: Waiting) -> None:
    sign_in(browser_like, waiting.prescriber_key)
    page = browser_like.get("/pages/approvals")
    a, b = waiting.approvals["a"]["id"], waiting.approvals["b"]["id"]
    assert f'id="approval-{a}"' in page.text and f'id="approval-{b}"' in page.text
    token = csrf_in(page.text)
    # a decline without a reason, and a dose above the one asked (refused by the domain, as the API refuses it)
    no_reason = browser_like.post(f"/pages/approvals/{b}/decision",
                                  data={"csrf": token, "decision": "decline", "reason": "  "})
    assert no_reason.status_code == 422 and "A decline gives its reason" in no_reason.text
    too_much = browser_like.post(f"/pages/approvals/{a}/decision",
                                 data={"csrf": token, "decision": "approve", "approved_mg": "150"})
    assert too_much.status_code == 422 and "approved_mg must be in (0, 100.0]" in too_much.text
    assert 'value="150"' in too_much.text  # what was typed stays in the form
    assert waiting.approval("a")["status"] == "pending" and waiting.approval("b")["status"] == "pending"
    # approve a at most 80 mg, decline b with a reason
    approved = browser_like.post(f"/pages/approvals/{a}/decision",
                                 data={"csrf": token, "decision": "approve", "approved_mg": "80", "reason": "ok"})
    assert approved.status_code == 303 and approved.headers["location"] == f"/pages/approvals?decided={a}"
    shown = browser_like.get(approved.headers["location"])
    assert "Approved" in shown.text and "at most 80 mg" in shown.text and f'id="approval-{a}"' not in shown.text
    declined = browser_like.post(f"/pages/approvals/{b}/decision",
                                 data={"csrf": token, "decision": "decline", "reason": "BP trend: recheck first"})
    assert declined.status_code == 303
    assert "Declined" in browser_like.get(declined.headers["location"]).text
    assert waiting.approval("a")["status"] == "approved" and waiting.approval("a")["approved_mg"] == 80
    assert waiting.approval("b")["status"] == "declined" and waiting.approval("b")["reason"] == "BP trend: recheck first"
    # deciding again is refused as the API refuses it (409), shown on the page
    again = browser_like.post(f"/pages/approvals/{a}/decision",
                              data={"csrf": token, "decision": "decline", "reason": "changed my mind"})
    assert again.status_code == 409 and 'role="alert"' in again.text
    # the events name the prescriber as the actor, as a decision over the API does
    events = ok(waiting.tenant.client.get(f"/v1/courses/{waiting.course_id}/events",
                                          headers=waiting.tenant.headers), 200)
    decided = [e for e in events if e["type"] == "DoseApprovalDecided"]
    assert {e["actor"]["id"] for e in decided} == {waiting.tenant.prescriber["id"]}
    assert {e["actor"]["role"] for e in decided} == {"prescriber"}


def test_everything_shown_is_escaped(client: httpx.Client, browser_like: httpx.Client,
                                     live_server: LiveServer) -> None:
    hostile = '<script>alert("a")</script>'
    waiting = waiting_course(client, live_server.operator_token, clinic_name='Clinic <img src=x onerror=alert(1)>',
                             partner_refs={"a": f"a-{hostile}", "b": "b-&amp;"})
    sign_in(browser_like, waiting.prescriber_key)
    page = browser_like.get("/pages/approvals").text
    assert hostile not in page and "<img src=x" not in page
    assert "a-&lt;script&gt;alert(&#34;a&#34;)&lt;/script&gt;" in page
    assert "Clinic &lt;img src=x onerror=alert(1)&gt;" in page
    assert "b-&amp;amp;" in page
    token = csrf_in(page)
    b = waiting.approvals["b"]["id"]
    browser_like.post(f"/pages/approvals/{b}/decision", data={"csrf": token, "decision": "decline", "reason": hostile})
    # the operator's timeline shows the reason (as the actor's reason and in the event's data), escaped
    with httpx.Client(base_url=live_server.base_url, timeout=30) as operator:
        sign_in(operator, live_server.operator_token)
        timeline = operator.get(f"/pages/audit/courses/{waiting.course_id}").text
        assert hostile not in timeline and "&lt;script&gt;" in timeline
        assert "a-&lt;script&gt;" in timeline


def test_a_one_time_link_signs_in_once(client: httpx.Client, browser_like: httpx.Client, waiting: Waiting,
                                       live_server: LiveServer, database_url: str, db_schema: str) -> None:
    link = ok(client.post("/v1/sign-in-links", headers=bearer(waiting.prescriber_key)), 201)
    assert link["url"] == f"{live_server.base_url}{link['path']}" and link["valid_seconds"] == 900
    assert link["path"].startswith("/pages/sign-in/link?token=")
    # opening it uses nothing up (a mail scanner's preview): the click on its page does
    for _ in range(2):
        opened = browser_like.get(link["path"])
        assert opened.status_code == 200 and "Continue" in opened.text
    token = link["path"].split("token=", 1)[1]
    assert f'name="token" value="{token}"' in opened.text
    signed_in = browser_like.post("/pages/sign-in/link", data={"token": token, "csrf": csrf_in(opened.text)})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/pages/approvals"
    assert browser_like.get("/pages/approvals").status_code == 200
    # a second use, from another browser, is refused
    with httpx.Client(base_url=live_server.base_url, timeout=30) as other:
        page = other.get(link["path"])
        again = other.post("/pages/sign-in/link", data={"token": token, "csrf": csrf_in(page.text)})
        assert again.status_code == 401 and "used already" in again.text
        assert "kact_page" not in other.cookies
        # an expired link is refused too
        late = ok(client.post("/v1/sign-in-links", headers=bearer(waiting.prescriber_key)), 201)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("UPDATE {}.sign_in_links SET expires_at = now() - interval '1 second' "
                                 "WHERE used_at IS NULL AND principal_id = %s").format(sql.Identifier(db_schema)),
                         (waiting.tenant.prescriber["id"],))
        page = other.get(late["path"])
        expired = other.post("/pages/sign-in/link", data={"token": late["path"].split("token=", 1)[1],
                                                          "csrf": csrf_in(page.text)})
        assert expired.status_code == 401
    # only a prescriber or the operator has a page to sign in to
    refused = client.post("/v1/sign-in-links", headers=waiting.tenant.headers)
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/forbidden"
    assert client.post("/v1/sign-in-links", headers=bearer(live_server.operator_token)).status_code == 201


def test_revoking_the_key_ends_its_page_sessions_and_signing_out_ends_one(
        client: httpx.Client, browser_like: httpx.Client, waiting: Waiting, live_server: LiveServer) -> None:
    prescriber = waiting.tenant.prescriber["id"]
    # a second key, to sign in with and then revoke (the first stays: the prescriber is not locked out)
    spare = ok(client.post(f"/v1/prescribers/{prescriber}/keys", json={"label": "tablet"},
                           headers=bearer(waiting.prescriber_key)), 201)
    assert sign_in(browser_like, spare["api_key"]).status_code == 303
    with httpx.Client(base_url=live_server.base_url, timeout=30) as by_link:
        link = ok(client.post("/v1/sign-in-links", headers=bearer(spare["api_key"])), 201)
        page = by_link.get(link["path"])
        by_link.post("/pages/sign-in/link", data={"token": link["path"].split("token=", 1)[1],
                                                  "csrf": csrf_in(page.text)})
        assert by_link.get("/pages/approvals").status_code == 200
        assert browser_like.get("/pages/approvals").status_code == 200
        assert client.delete(f"/v1/keys/{spare['id']}", headers=bearer(waiting.prescriber_key)).status_code == 204
        assert browser_like.get("/pages/approvals").status_code == 303
        assert by_link.get("/pages/approvals").status_code == 303
    # signing out ends the session on the server, not only in the browser
    sign_in(browser_like, waiting.prescriber_key)
    cookie = browser_like.cookies["kact_page"]
    page = browser_like.get("/pages/approvals")
    out = browser_like.post("/pages/sign-out", data={"csrf": csrf_in(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/pages/sign-in"
    with httpx.Client(base_url=live_server.base_url, timeout=30, cookies={"kact_page": cookie}) as replayed:
        assert replayed.get("/pages/approvals").status_code == 303


def test_each_principal_sees_only_its_own_page(browser_like: httpx.Client, waiting: Waiting,
                                               live_server: LiveServer, client: httpx.Client) -> None:
    sign_in(browser_like, waiting.prescriber_key)
    refused = browser_like.get(f"/pages/audit/courses/{waiting.course_id}")
    assert refused.status_code == 403 and "for the operator" in refused.text
    # another prescriber's queue does not hold this course's approvals
    other = waiting_course(client, live_server.operator_token, "Other practice")
    with httpx.Client(base_url=live_server.base_url, timeout=30) as others:
        sign_in(others, other.prescriber_key)
        page = others.get("/pages/approvals").text
        assert waiting.approvals["a"]["id"] not in page and other.approvals["a"]["id"] in page
        token = csrf_in(page)
        stolen = others.post(f"/pages/approvals/{waiting.approvals['a']['id']}/decision",
                             data={"csrf": token, "decision": "approve", "approved_mg": "100"})
        assert stolen.status_code == 404
    assert waiting.approval("a")["status"] == "pending"
    with httpx.Client(base_url=live_server.base_url, timeout=30) as operator:
        sign_in(operator, live_server.operator_token)
        assert operator.get("/pages/approvals").status_code == 403


def test_the_operator_audits_a_course_and_every_page_read_is_in_its_access_log(
        browser_like: httpx.Client, waiting: Waiting, live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=30) as prescriber:
        sign_in(prescriber, waiting.prescriber_key)
        prescriber.get("/pages/approvals")
    answer = sign_in(browser_like, live_server.operator_token)
    assert answer.headers["location"] == "/pages/audit"
    home = browser_like.get("/pages/audit")
    assert home.status_code == 200 and waiting.course_id in home.text
    assert browser_like.get(f"/pages/audit?course_id=%20{waiting.course_id}%20").headers["location"] == \
        f"/pages/audit/courses/{waiting.course_id}"
    assert browser_like.get("/pages/audit?course_id=nope").status_code == 422
    page = browser_like.get(f"/pages/audit/courses/{waiting.course_id}")
    assert page.status_code == 200
    versions = [int(v) for v in re.findall(r'id="event-(\d+)"', page.text)]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) > 20
    assert "Not verified." in page.text
    access = page.text.split('id="access-log"', 1)[1]
    assert f"prescriber:{waiting.tenant.prescriber['id']}" in access and "read_approvals" in access
    assert "operator:root" in access and "read_history" in access
    # the course as of its first event: opened, nothing else
    first = browser_like.get(f"/pages/audit/courses/{waiting.course_id}/versions/1")
    assert first.status_code == 200 and 'id="course-phase">assessment<' in first.text
    assert "None booked." in first.text and "None asked for." in first.text
    last = browser_like.get(f"/pages/audit/courses/{waiting.course_id}/versions/{versions[-1]}")
    assert last.text.count("tag-pending") == 2
    beyond = browser_like.get(f"/pages/audit/courses/{waiting.course_id}/versions/{versions[-1] + 1}")
    assert beyond.status_code == 404
    unknown = browser_like.get("/pages/audit/courses/6a1f7a58-5a43-4c55-9a0e-3c1f0c6c2d10")
    assert unknown.status_code == 404 and "text/html" in unknown.headers["content-type"]
    # these reads were logged too: the timeline and the replay
    again = browser_like.get(f"/pages/audit/courses/{waiting.course_id}").text.split('id="access-log"', 1)[1]
    assert again.count("replay_course") >= 2 and again.count("read_history") >= 2
