#!/usr/bin/env bash
# Regenerate the pinned dependency sets from pyproject.toml (needs uv: pip install uv).
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml --python-version 3.11 --quiet -o requirements.lock "$@"
uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o requirements-dev.lock "$@"
