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


def test_every_operation_documents_its_real_problems_and_no_400() -> None:
    doc = json.loads(CONTRACT.read_text())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert len(operation.get("description", "")) > 40, f"{method} {path} has no description"
            assert "400" not in responses, f"{method} {path} documents a 400 it never answers"
            if path.startswith("/v1/"):
                assert {"401", "503"} <= set(responses), f"{method} {path}"
                assert operation.get("security") is None  # the document's bearer key
            else:
                assert operation["security"] == [], f"{method} {path} needs no key"
            if method == "post" and path.startswith("/v1/"):
                assert {"409", "413", "415", "422"} <= set(responses), f"{method} {path}"
            if "{" in path and path.startswith("/v1/"):
                assert "404" in responses, f"{method} {path}"
            for status, response in responses.items():
                if status.startswith(("4", "5")) and "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    content = doc["components"]["responses"][name]["content"]
                    assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def _validator(doc: dict, schema: dict):
    """A JSON Schema 2020-12 validator of `schema` whose `#/components/...` references resolve in `doc`, checking
    formats (uuid, date, date-time with its offset)."""
    from datetime import datetime

    import jsonschema

    formats = jsonschema.FormatChecker()

    @formats.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None

    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]}, format_checker=formats)


def _examples(media: dict) -> list:
    return [example["value"] for example in (media.get("examples") or {}).values()] + (
        [media["example"]] if "example" in media else [])


def test_every_response_with_a_body_has_an_example_its_schema_accepts() -> None:
    doc = json.loads(CONTRACT.read_text())
    checked = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if "$ref" in response:  # a problem: the component has its examples (checked below)
                    continue
                for media_type, media in (response.get("content") or {}).items():
                    examples = _examples(media)
                    assert examples, f"{method} {path}: its {status} response has no example"
                    for example in examples:
                        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                                  for e in _validator(doc, media["schema"]).iter_errors(example)]
                        assert not errors, (method, path, status, media_type, errors)
                        checked += 1
    for name, response in doc["components"]["responses"].items():
        for media in response["content"].values():
            assert _examples(media), name
            for example in _examples(media):
                assert not list(_validator(doc, media["schema"]).iter_errors(example)), name
    assert checked >= 55


def test_every_request_example_is_a_body_its_schema_accepts() -> None:
    doc = json.loads(CONTRACT.read_text())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            schema = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
            for example in (schema or {}).get("examples", []):
                errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                          for e in _validator(doc, schema).iter_errors(example)]
                assert not errors, (method, path, errors)


def test_the_feed_example_is_a_feed_item_as_the_event_contract_defines_it() -> None:
    import jsonschema

    from scheduler.http.examples import RESPONSES

    item_schema = json.loads((CONTRACT.parent / "schemas" / "feed-item.json").read_text())
    for item in RESPONSES["readFeed"]["items"]:
        jsonschema.validate(item, item_schema)
        event_schema = json.loads((CONTRACT.parent / "schemas" / f"{item['event']['type']}.json").read_text())
        jsonschema.validate(item["event"], event_schema)


def test_the_operations_without_a_key_are_the_paths_the_rate_limiter_leaves_alone() -> None:
    """A key sent to a route that needs none is neither looked up nor charged (no 401 or 429 there), and no GET or
    DELETE takes a body (the body guard leaves theirs unread: no 413 or 415 there)."""
    from scheduler.http.ratelimit import is_public

    doc = json.loads(CONTRACT.read_text())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert is_public(path) == (operation.get("security") == []), f"{method} {path}"
            if method in ("get", "delete"):
                assert "requestBody" not in operation, f"{method} {path}"
    assert is_public("/schema") and is_public("/schema/openapi.json") and is_public("/schema/swagger")
    assert not is_public("/v1/courses") and not is_public("/problemsx")


def test_request_bodies_refuse_unknown_fields_and_nul_characters() -> None:
    doc = json.loads(CONTRACT.read_text())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["allOf"][0]["$ref"]
                name = ref.rsplit("/", 1)[1]
                schema = doc["components"]["schemas"][name]
                assert schema["additionalProperties"] is False, name
                texts = [p for p in schema["properties"].values() if p.get("type") == "string" and "format" not in p]
                assert all("pattern" in p or "enum" in p for p in texts), name


def test_every_problem_type_the_code_answers_has_a_page() -> None:
    import re
    from pathlib import Path

    from scheduler.http.problem_types import DOCS, PROBLEM_TYPES, markdown
    from scheduler.http.problems import RULE_SLUGS

    source = Path(__file__).resolve().parents[2] / "services" / "scheduler" / "scheduler"
    used = set(RULE_SLUGS.values()) | {"rule-violations", "rule-violation"}
    pattern = re.compile(r'(?:ProblemError\(\d+|problem\([\w.]+|send_problem\(send, \d+), "([a-z-]+)"')
    for module in source.rglob("*.py"):
        used |= set(pattern.findall(module.read_text()))
    assert used - PROBLEM_TYPES.keys() == set()
    for name, problem in PROBLEM_TYPES.items():
        assert (DOCS / f"{name}.md").read_text() == markdown(name, problem), (
            "docs/problems is stale: run `python -m scheduler.http.problem_types`")


def test_the_rules_page_explains_every_rule_the_problem_types_name() -> None:
    from pathlib import Path

    from scheduler.http.problem_types import PROBLEM_TYPES, markdown
    from scheduler.http.rules import RULES, anchor, page
    from scheduler.http.rules import markdown as rules_markdown

    assert list(RULES) == [f"I{n}" for n in range(1, 12)]
    docs = Path(__file__).resolve().parents[2] / "docs"
    assert (docs / "RULES.md").read_text() == rules_markdown(), (
        "docs/RULES.md is stale: run `python -m scheduler.http.problem_types`")
    named = {problem.rule for problem in PROBLEM_TYPES.values() if problem.rule and problem.rule.startswith("I")}
    assert named == set(RULES), "every rule is named by a problem type, and every named rule is explained"
    served = page()
    for name, problem in PROBLEM_TYPES.items():
        if problem.rule in RULES:
            fragment = anchor(problem.rule)
            assert f"(../RULES.md#{fragment})" in markdown(name, problem)
            assert f'id="{fragment}"' in served
            # GitHub's anchor of the heading: lower case, punctuation dropped, spaces as '-'
            heading = f"## {problem.rule} {RULES[problem.rule].title}"
            assert heading in rules_markdown()
            assert heading[3:].lower().replace(" ", "-") == fragment
