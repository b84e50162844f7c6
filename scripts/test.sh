#!/usr/bin/env bash
# Set up a virtual environment with the test dependencies; lint, format-check and type-check; run the
# suite (any arguments go to pytest: `./scripts/test.sh -m "not slow"` is the fast tier).
# Works on a fresh clone: no GPU, no ../shared needed (tests that use the shared CIFAR-10 copy skip).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt -r requirements-ray.txt
# The browser test drives Debian's Chromium; install it when we can (root), else that test skips.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) \
      || echo "note: could not install chromium; the browser test will be skipped"
  fi
fi
# The habits of a kept project, before any test: lint, format, types (settings: pyproject.toml).
echo "ruff check, ruff format --check, mypy:"
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
