"""The HTTP contract as an OpenAPI document; `python -m scheduler.openapi` writes contracts/openapi.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from scheduler.bootstrap import create_app
from scheduler.settings import Settings

CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "openapi.json"


def document() -> dict[str, Any]:
    """The document the app serves at /schema/openapi.json (building the app connects to nothing)."""
    app = create_app(Settings(operator_token="unused", database_url="postgresql://unused@localhost/unused",
                              cipher_key="unused"))
    return app.openapi_schema.to_schema()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scheduler.openapi", description=__doc__)
    parser.add_argument("target", nargs="?", type=Path, default=CONTRACT, help=f"where to write (default {CONTRACT})")
    target = parser.parse_args(argv).target
    target.write_text(render(document()))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
