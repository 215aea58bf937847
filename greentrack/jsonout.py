"""The one JSON encoder of every output (CLI ``--format json``, reports, exports, dashboards).

JSON has no NaN or Infinity: Python's ``json`` writes ``NaN`` / ``Infinity`` tokens that strict
parsers (``JSON.parse``, ``jq``, most languages) refuse. Every output therefore goes through
:func:`dumps`, which writes every non-finite number (NaN, +inf, -inf; Python, NumPy or Decimal)
as ``null``, and refuses with ``allow_nan=False`` anything that still slipped through.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite"]


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (deep, in dicts, lists and tuples) as ``None``.

    NumPy scalars become Python numbers; other objects are left as they are.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    item = getattr(obj, "item", None)  # numpy scalar (np.float32, np.int64, ...)
    if callable(item) and getattr(obj, "shape", None) == ():
        try:
            return finite(item())
        except (TypeError, ValueError):
            return obj
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` with non-finite numbers as ``null`` (other objects via ``default=str``
    unless given); the text is strict JSON."""
    kwargs.setdefault("default", str)
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
