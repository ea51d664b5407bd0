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
