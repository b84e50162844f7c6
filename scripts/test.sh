#!/usr/bin/env bash
# Set up a virtual environment with the test dependencies and run the whole suite.
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
exec .venv/bin/python -m pytest -q "$@"
