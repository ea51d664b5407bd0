"""The running server serves exactly the checked-in contract at /schema."""

from __future__ import annotations

import httpx
import pytest

from scheduler.openapi import CONTRACT, render

pytestmark = pytest.mark.integration


def test_the_server_serves_the_contract(live_server) -> None:
    served = httpx.get(f"{live_server.base_url}/schema/openapi.json", timeout=10).json()
    assert render(served) == CONTRACT.read_text()
    assert httpx.get(f"{live_server.base_url}/schema", timeout=10).status_code == 200


def test_a_problem_type_resolves_to_its_page(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        refused = client.post("/v1/courses", content=b"[" * 40 + b"]" * 40,
                              headers={"Authorization": f"Bearer {live_server.operator_token}",
                                       "Content-Type": "application/json"})
        page = client.get(refused.json()["type"])  # no key needed
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "The request is not valid" in page.text
        rule = client.get("/problems/double-booking")
        assert rule.status_code == 200 and "I10" in rule.text
        # ... and links to the rule it names, explained on the rules page (no key needed either)
        assert 'href="/rules#i10-no-double-booking"' in rule.text
        rules = client.get("/rules")
        assert rules.status_code == 200 and rules.headers["content-type"].startswith("text/html")
        assert 'id="i10-no-double-booking"' in rules.text and 'href="/problems/double-booking"' in rules.text
        index = client.get("/problems")
        assert index.status_code == 200 and 'href="/problems/integration-window"' in index.text
        unknown = client.get("/problems/no-such-problem")
        assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/not-found"


def test_options_and_405_name_every_method_of_a_path(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        options = client.options("/v1/courses")
        assert options.status_code == 204
        assert set(options.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}
        traced = client.request("TRACE", "/v1/courses")
        assert traced.status_code == 405 and traced.json()["type"] == "/problems/method-not-allowed"
        assert set(traced.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}


def test_a_body_is_taken_as_its_schema_says_not_loosely(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        clinic = client.post("/v1/clinics", json={"name": "Strict"},
                             headers={"Authorization": f"Bearer {live_server.operator_token}"}).json()
        key = {"Authorization": f"Bearer {clinic['api_key']}"}
        for protocol in ({"low_dose": 0}, {"min_integration_sessions": "4"}, {"min_integration_sessions": 4.0}):
            response = client.post("/v1/courses", json={"model": "together", "partners": {"a": "x", "b": "y"},
                                                        "protocol": protocol}, headers=key)
            assert response.status_code == 422, (protocol, response.text)
            assert "protocol" in response.json()["detail"]


def test_the_docs_page_loads_nothing_from_another_host(live_server) -> None:
    import re

    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        for page in ("/schema", "/schema/swagger"):
            html = client.get(page)
            assert html.status_code == 200 and "swagger-ui" in html.text
            sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
            assert sources and all(source.startswith("/") for source in sources), sources
            for source in sources:
                asset = client.get(source)
                assert asset.status_code == 200 and len(asset.content) > 1000, source
        assert client.get("/schema/static/swagger-editor.js").status_code == 404
