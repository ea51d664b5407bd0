"""`GET /problems/<name>`: the page a problem's `type` resolves to, and `GET /rules`: the clinical rules those pages
link to (no key needed)."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.params import Parameter

from scheduler.http.problem_types import PROBLEM_TYPES, index_page, page
from scheduler.http.problems import ProblemError
from scheduler.http.rules import page as rules_page

HTML = "text/html; charset=utf-8"


@get("/problems", operation_id="listProblemTypes", tags=["problems"], media_type=HTML,
     summary="Every problem type the API answers, each linked to its page")
async def list_problem_types() -> Response[str]:
    return Response(index_page(), media_type=HTML)


@get("/problems/{name:str}", operation_id="getProblemType", tags=["problems"], media_type=HTML,
     summary="What a problem type means, the rule it names, and what to do about it")
async def get_problem_type(
    name: Annotated[str, Parameter(pattern="^[a-z0-9-]{1,40}$", description="The name in `type: /problems/<name>`")],
) -> Response[str]:
    problem = PROBLEM_TYPES.get(name)
    if problem is None:
        raise ProblemError(404, "not-found", "Not found", f"no problem type {name}")
    return Response(page(name, problem), media_type=HTML)


@get("/rules", operation_id="getRules", tags=["problems"], media_type=HTML,
     summary="The clinical rules I1-I11: what each requires, its setting, why, and when it is checked")
async def get_rules() -> Response[str]:
    return Response(rules_page(), media_type=HTML)
