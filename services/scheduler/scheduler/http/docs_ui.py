"""The API's docs page (Swagger UI at /schema and /schema/swagger), with its files served by the API itself from the
pinned `swagger-ui-py` wheel: it works with no internet, and loads nothing from a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import swagger_ui
from litestar import Response, get
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import Parameter

from scheduler.http.problems import ProblemError

STATIC = Path(swagger_ui.__file__).resolve().parent / "static"
PREFIX = "/schema/static"
FILES = {  # name: media type
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def render_plugin() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        js_url=f"{PREFIX}/swagger-ui-bundle.js",
        css_url=f"{PREFIX}/swagger-ui.css",
        standalone_preset_js_url=f"{PREFIX}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{PREFIX}/favicon-32x32.png'>",
        path="/swagger",
    )


@get(f"{PREFIX}/{{name:str}}", include_in_schema=False, cache=False)
async def docs_file(name: Annotated[str, Parameter(max_length=64)]) -> Response[bytes]:
    media_type = FILES.get(name)
    if media_type is None:
        raise ProblemError(404, "not-found", "Not found", f"no file {name}")
    return Response((STATIC / name).read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=86400"})
