#!/usr/bin/env bash
# Regenerate the pinned dependency sets from pyproject.toml (needs uv: it is in the dev set).
#
# One universal lock per set, with hashes: environment markers make each valid on CPython 3.11 to 3.14
# on every platform (tests/packaging proves a wheel for every pin on Linux x86-64 and arm64 and macOS).
# Existing pins are kept; move one with --upgrade-package NAME, all with --upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
compile() {
    uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
        --custom-compile-command scripts/lock.sh --no-python-downloads --quiet "$@"
}
compile -o requirements.lock "$@"
compile --extra dev -o requirements-dev.lock "$@"
