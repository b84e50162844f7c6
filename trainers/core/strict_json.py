"""Strict JSON for everything we write: NaN and ±Infinity become null.

Python's json writes the tokens NaN and Infinity, which strict parsers (JavaScript's JSON.parse,
jq, most other languages) reject. A non-finite number in our data means "no value" (a diverged
run's loss, an ETA before the first step), so it is written as null, everywhere: result.json,
the store, `export` (JSON and CSV), `status --json` and `results --json` (docs/limits.md).
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(x: Any) -> Any:
    """`x` with every non-finite float (at any depth of dicts, lists, tuples) replaced by None."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that never writes NaN/Infinity (they become null) and refuses to if asked to."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
