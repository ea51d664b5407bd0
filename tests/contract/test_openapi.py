"""The served OpenAPI document, the checked-in contract and the routes agree."""

from __future__ import annotations

import json

from scheduler.openapi import CONTRACT, document, render


def test_the_checked_in_contract_matches_the_code() -> None:
    assert CONTRACT.read_text() == render(document()), (
        "contracts/openapi.json is stale: run `python -m scheduler.openapi` and commit the result")


def test_every_operation_has_an_id_and_every_body_an_example() -> None:
    doc = json.loads(CONTRACT.read_text())
    operation_ids = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert operation.get("operationId"), f"{method} {path} has no operationId"
            operation_ids.append(operation["operationId"])
            body = operation.get("requestBody")
            if body:
                schema = body["content"]["application/json"]["schema"]
                assert schema.get("examples"), f"{method} {path} has no example body"
    assert len(operation_ids) == len(set(operation_ids))
    assert {"openCourse", "bookSession", "recordSession", "requestDoseApproval", "decideDoseApproval",
            "completeCourse", "discontinueCourse", "listCourseEvents"} <= set(operation_ids)
