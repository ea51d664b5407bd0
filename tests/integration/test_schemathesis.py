"""The served OpenAPI document tells the truth: schemathesis runs every operation with every default check, at
least 25 examples each, with a clinic's key and with the operator's, against a server of its own: zero failures."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import LiveServer, NotifierThread, notifier_settings, serve, server_settings
from psycopg import sql

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

CONFIG = Path(__file__).resolve().parents[1] / "contract" / "schemathesis.toml"
EXAMPLES = int(os.environ.get("KACT_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzzed_server(database_url: str, nats_url: str) -> Iterator[LiveServer]:
    """The whole system (API, jobs, notifier) on a schema of its own: what the fuzzer creates never meets another
    test's data, and every health check has something to report."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        with serve(server_settings(database_url, nats_url, schema)) as server:
            notifier = NotifierThread(notifier_settings(server.settings)).start()
            try:
                yield server
            finally:
                notifier.stop()
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))


def fuzzed_cases(events: Path) -> Counter[str]:
    """The test cases schemathesis generated per operation ("GET /v1/courses/{course_id}") in its fuzzing phase,
    the one `--max-examples` bounds, from its NDJSON event report (`--report ndjson`): each finished scenario
    carries the cases it ran. Cases a check derived from another (`parent_id`) are not counted."""
    cases: Counter[str] = Counter()
    with events.open() as lines:
        for line in lines:
            event = json.loads(line).get("ScenarioFinished")
            if event is None or event["phase"] != "fuzzing":
                continue
            for node in event["recorder"].get("cases", {}).values():
                if node.get("parent_id") is None:
                    cases[f"{node['value']['method']} {node['value']['path']}"] += 1
    return cases


def schemathesis(server: LiveServer, key: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    seed = secrets.randbelow(2**31)
    return subprocess.run(
        [st, "--config-file", str(CONFIG), "run", f"{server.base_url}/schema/openapi.json",
         "--header", f"Authorization: Bearer {key}", "--max-examples", str(EXAMPLES), "--seed", str(seed),
         # One worker: with several, hypothesis parses lambdas' source (ast.parse) in concurrent threads, which
         # CPython 3.11 can fail with "SystemError: AST constructor recursion depth mismatch" (gh-106905).
         "--workers", "1", "--no-color",
         "--report", "ndjson", "--report-ndjson-path", str(tmp_path / "events.ndjson")],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )


@pytest.mark.parametrize("who", ["clinic", "operator"])
def test_schemathesis_finds_nothing(fuzzed_server: LiveServer, who: str, tmp_path: Path) -> None:
    key = fuzzed_server.operator_token
    if who == "clinic":
        clinic = httpx.post(f"{fuzzed_server.base_url}/v1/clinics", json={"name": "Fuzzed clinic"},
                            headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
        key = clinic["api_key"]
    result = schemathesis(fuzzed_server, key, tmp_path)
    report = result.stdout[-12000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    # every operation was selected and tested
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested and selected.group(1) == selected.group(2) == tested.group(1), report
    assert int(tested.group(1)) >= 40, report
    # At least EXAMPLES generated cases for every operation whose inputs allow that many: one with a parameter
    # (path, query or header) or a body. An operation with neither (GET /health/live, GET /problems) has exactly
    # one possible request, so hypothesis draws it once and stops: it must have been run, no more.
    doc = httpx.get(f"{fuzzed_server.base_url}/schema/openapi.json", timeout=10).json()
    cases = fuzzed_cases(tmp_path / "events.ndjson")
    short = {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            wanted = EXAMPLES if operation.get("parameters") or operation.get("requestBody") else 1
            if cases[label] < wanted:
                short[label] = (cases[label], wanted)
    assert not short, f"operations given fewer examples than required (got, wanted): {short}\n{report}"
    print(result.stdout[-1500:])
