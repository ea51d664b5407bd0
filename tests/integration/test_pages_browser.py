"""The prescriber's and the operator's pages end to end in headless Chromium (Debian's `chromium`, driven by
Playwright): signing in with a key and with a one-time link, approving up to a dose and declining with a reason,
the approve form by keyboard alone, a phone's screen, and the operator's timeline, replay and access log.

Screenshots land in test-artifacts/screenshots/ (git-ignored); docs/screenshots/ holds copies for the README."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import bearer, ok
from conftest import LiveServer
from pages_support import Waiting, waiting_course
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHROMIUM = os.environ.get("KACT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
# As root there is no sandbox to drop into; the rest keeps Chromium off a network this machine does not have.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: install Debian's package (`apt-get install -y "
                    f"chromium`) or point KACT_TEST_CHROMIUM at a Chromium binary. Playwright's own download "
                    f"(`playwright install`) is not used.", pytrace=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def contexts(chromium: Browser, live_server: LiveServer) -> Iterator[list[BrowserContext]]:
    """Browser contexts a test opens (each a separate browser profile: its own cookies), closed after it."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def new_page(chromium: Browser, contexts: list[BrowserContext], live_server: LiveServer, **options: object) -> Page:
    context = chromium.new_context(base_url=live_server.base_url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(20_000)
    contexts.append(context)
    return context.new_page()


@pytest.fixture
def waiting(client: httpx.Client, live_server: LiveServer) -> Waiting:
    return waiting_course(client, live_server.operator_token)


def shoot(page: Page, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def sign_in_with_key(page: Page, key: str, lands_on: str) -> None:
    page.goto("/pages/approvals" if lands_on == "Dose approvals" else "/pages/audit")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(lands_on)


def no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert max(widths[:2]) <= widths[2], f"{page.url} scrolls sideways: {widths}"


def test_a_prescriber_approves_up_to_a_dose_and_declines_another_with_a_reason(
        chromium: Browser, contexts: list[BrowserContext], live_server: LiveServer, waiting: Waiting) -> None:
    page = new_page(chromium, contexts, live_server, viewport={"width": 1100, "height": 900})
    sign_in_with_key(page, waiting.prescriber_key, "Dose approvals")
    a, b = waiting.approvals["a"]["id"], waiting.approvals["b"]["id"]
    card_a, card_b = page.locator(f"#approval-{a}"), page.locator(f"#approval-{b}")
    # what deciding takes: partner, dose asked, session time and clinic, screening, latest vitals, previous doses
    expect(card_a.get_by_role("heading")).to_have_text("Partner a: 100 mg asked")
    expect(card_a).to_contain_text(waiting.partner_refs["a"])
    expect(card_a).to_contain_text("Fri 30 Jan 2026, 10:00 CET")  # 09:00 UTC in the clinic's zone
    expect(card_a).to_contain_text("Harbour Couples Therapy")
    expect(card_a.locator(".tag-eligible")).to_have_text("eligible")
    expect(card_a).to_contain_text("BP 128/82 mmHg, HR 74/min")
    expect(card_a).to_contain_text("discharge")
    expect(card_a.locator("dd ul li")).to_have_count(1)
    expect(card_a.locator("dd ul li")).to_contain_text("100 mg on")
    shoot(page, "prescriber-approvals.png")
    # approve partner a's dose, at most 80 mg
    card_a.get_by_label("Maximum dose (mg)").fill("80")
    card_a.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved: partner a, at most 80 mg")
    expect(card_a).to_have_count(0)
    approved = waiting.approval("a")
    assert (approved["status"], approved["approved_mg"]) == ("approved", 80)
    # decline partner b's with a reason
    card_b.get_by_label("Reason").fill("Blood pressure trending up: recheck before dosing")
    card_b.get_by_role("button", name="Decline").click()
    expect(page.get_by_role("status")).to_contain_text("Declined: partner b")
    expect(page.get_by_text("No dose approvals are waiting for you.")).to_be_visible()
    declined = waiting.approval("b")
    assert (declined["status"], declined["reason"]) == ("declined", "Blood pressure trending up: recheck before dosing")
    shoot(page, "prescriber-decided.png")


def test_a_one_time_link_signs_the_prescriber_in_once(chromium: Browser, contexts: list[BrowserContext],
                                                      live_server: LiveServer, waiting: Waiting,
                                                      client: httpx.Client) -> None:
    link = ok(client.post("/v1/sign-in-links", headers=bearer(waiting.prescriber_key)), 201)
    page = new_page(chromium, contexts, live_server)
    page.goto(link["url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in with a link")
    shoot(page, "sign-in-link.png")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dose approvals")
    expect(page.locator(f"#approval-{waiting.approvals['a']['id']}")).to_be_visible()
    # the same link in another browser: used up
    other = new_page(chromium, contexts, live_server)
    other.goto(link["url"])
    other.get_by_role("button", name="Continue").click()
    expect(other.get_by_role("alert")).to_contain_text("used already")
    other.goto("/pages/approvals")
    expect(other.get_by_role("heading", level=1)).to_have_text("Sign in")


def focused(page: Page) -> str:
    return str(page.evaluate(
        "() => { const e = document.activeElement; return e.id || e.textContent.trim() || e.tagName }"))


def test_the_approve_form_works_by_keyboard_alone(chromium: Browser, contexts: list[BrowserContext],
                                                  live_server: LiveServer, waiting: Waiting) -> None:
    page = new_page(chromium, contexts, live_server)
    page.goto("/pages/sign-in")
    expect(page.get_by_label("API key")).to_be_focused()  # the field has the focus: type, then Enter
    page.keyboard.type(waiting.prescriber_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dose approvals")
    first, second = waiting.approvals["a"]["id"], waiting.approvals["b"]["id"]  # one session: by partner
    # the tab order: skip link, sign out, then each card's approve form (dose, note, button), then its decline form
    order = []
    for _ in range(8):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == ["Skip to content", "Sign out", f"mg-{first}", f"note-{first}", "Approve", f"why-{first}",
                     "Decline", f"mg-{second}"]
    # back to the first dose field; its focus is visible
    for _ in range(5):
        page.keyboard.press("Shift+Tab")
    expect(page.locator(f"#mg-{first}")).to_be_focused()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Control+A")
    page.keyboard.type("75")
    page.keyboard.press("Tab")
    page.keyboard.type("Approved by keyboard")
    page.keyboard.press("Enter")  # submits the form the note belongs to: approve
    expect(page.get_by_role("status")).to_contain_text("at most 75 mg")
    decided = waiting.approval("a")
    assert (decided["status"], decided["approved_mg"], decided["reason"]) == ("approved", 75, "Approved by keyboard")


def test_the_pages_fit_a_phone_screen(chromium: Browser, contexts: list[BrowserContext], live_server: LiveServer,
                                      waiting: Waiting) -> None:
    phone = {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    page = new_page(chromium, contexts, live_server, **phone)
    sign_in_with_key(page, waiting.prescriber_key, "Dose approvals")
    expect(page.locator(f"#approval-{waiting.approvals['a']['id']}")).to_be_visible()
    assert page.evaluate("() => window.innerWidth") == PHONE["width"]
    no_horizontal_scroll(page)
    shoot(page, "prescriber-phone.png", full_page=False)
    operator = new_page(chromium, contexts, live_server, **phone)
    sign_in_with_key(operator, live_server.operator_token, "Audit a course")
    no_horizontal_scroll(operator)
    operator.goto(f"/pages/audit/courses/{waiting.course_id}")
    expect(operator.locator("#chain-status")).to_be_visible()
    no_horizontal_scroll(operator)
    operator.goto(f"/pages/audit/courses/{waiting.course_id}/versions/30")
    expect(operator.get_by_role("heading", level=1)).to_contain_text("As of event #30")
    no_horizontal_scroll(operator)
    shoot(operator, "operator-phone.png", full_page=False)


def test_the_operator_reads_a_timeline_replays_an_earlier_event_and_sees_the_access_log(
        chromium: Browser, contexts: list[BrowserContext], live_server: LiveServer, waiting: Waiting,
        client: httpx.Client) -> None:
    # the prescriber reads the approvals page first (signed in by a link)
    link = ok(client.post("/v1/sign-in-links", headers=bearer(waiting.prescriber_key)), 201)
    prescriber = new_page(chromium, contexts, live_server)
    prescriber.goto(link["url"])
    prescriber.get_by_role("button", name="Continue").click()
    expect(prescriber.locator(f"#approval-{waiting.approvals['a']['id']}")).to_be_visible()

    page = new_page(chromium, contexts, live_server, viewport={"width": 1100, "height": 900})
    sign_in_with_key(page, live_server.operator_token, "Audit a course")
    page.get_by_label("Course id").fill(waiting.course_id)
    page.get_by_role("button", name="Open its timeline").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Course {waiting.course_id}")
    expect(page.locator("#chain-status")).to_contain_text("Not verified.")
    events = page.locator("li.event")
    expect(events.first.get_by_role("heading")).to_have_text("#1 Opened")
    expect(events.first).to_contain_text(f"clinic {waiting.tenant.clinic['id']}")
    count = events.count()
    assert count > 20
    expect(events.nth(count - 1).get_by_role("heading")).to_have_text(f"#{count} DoseApprovalRequested")
    # the access log: the prescriber's page read, and this very read
    log = page.locator("#access-log tbody tr")
    expect(log.filter(has_text=f"prescriber:{waiting.tenant.prescriber['id']}").filter(
        has_text="read_approvals").first).to_be_visible()
    expect(log.filter(has_text="operator:root").filter(has_text="read_history").first).to_be_visible()
    shoot(page, "operator-timeline.png", full_page=False)
    # the course as it stood when the first dose was asked for: one approval, pending
    asked = events.filter(has_text="DoseApprovalRequested").first
    version = int(re.sub(r"\D", "", asked.locator(".version").inner_text()))
    asked.get_by_role("link", name=re.compile("The course as of event")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"As of event #{version} of {count}")
    expect(page.get_by_role("heading", name=re.compile(r"^Dose approvals"))).to_have_text("Dose approvals (1)")
    expect(page.locator("li.approval .tag")).to_have_text(["pending"])
    expect(page.locator("#course-phase")).to_have_text("medicine")
    shoot(page, "operator-as-of.png", full_page=False)
    # a step back, and the replay's own read is in the log
    page.get_by_role("link", name=f"‹ Event #{version - 1}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"As of event #{version - 1}")
    expect(page.get_by_role("heading", name=re.compile(r"^Dose approvals"))).to_have_text("Dose approvals (0)")
    page.goto(f"/pages/audit/courses/{waiting.course_id}")
    expect(log.filter(has_text="operator:root").filter(has_text="replay_course")).to_have_count(2)
