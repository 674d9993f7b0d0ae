"""Records: the values a test cell's probes saw, as plain data, and their comparison.

Inside the sandbox, :func:`plain` turns each value a probe sees into JSON data (numbers,
strings, lists; tensors and arrays as their shape and values, or a summary); in the harness,
:func:`same` compares a student's records with the reference's, on parsed JSON only. The
two sides share this format and nothing else.

Imports: the standard library only (numpy for an array or a tensor): :func:`plain` runs in
the student's process (:mod:`course_tools.grading.runner`).
"""

from __future__ import annotations

import json
import math
from typing import Any

#: tolerance of :func:`same` for floating-point records
RTOL, ATOL = 1e-4, 1e-6
#: tensors and arrays with more elements are recorded as a summary (shape, sums, a sample)
FULL_ELEMENTS = 1_000


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON data: numbers, strings, lists; tensors and arrays as
    ``{"nd": shape, "v": flat values}`` (over :data:`FULL_ELEMENTS` elements, a summary:
    sums and a strided sample of 64); other objects as ``{"type": name}``."""
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) else value[:100_000]
    if isinstance(value, int):
        return value if abs(value) < 2 ** 53 else {"int": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if depth > 20:
        return {"type": "too deep"}
    mod = type(value).__module__ or ""
    if mod.startswith(("torch", "numpy")):
        try:
            import numpy as np
            if mod.startswith("torch") and hasattr(value, "detach"):
                value = value.detach().cpu()
                if value.is_complex() or str(value.dtype) == "torch.bfloat16":
                    value = value.double()
                arr = value.numpy()
            elif isinstance(value, np.generic):
                return plain(value.item(), depth + 1)
            elif isinstance(value, np.ndarray):
                arr = value
            elif isinstance(value, tuple):  # torch.Size
                return [plain(x, depth + 1) for x in value]
            else:
                return {"type": f"{mod}.{type(value).__name__}", "str": str(value)[:200]}
            if arr.dtype == object:
                return {"nd": list(arr.shape), "v": [plain(x, depth + 1) for x in arr.ravel()[:FULL_ELEMENTS]]}
            flat = arr.ravel()
            if flat.size <= FULL_ELEMENTS:
                return {"nd": list(arr.shape), "v": flat.tolist()}
            f = flat.astype(np.float64)
            step = max(flat.size // 64, 1)
            return {"nd": list(arr.shape), "sum": float(f.sum()), "abssum": float(np.abs(f).sum()),
                    "sample": flat[::step].tolist()}
        except Exception as e:  # noqa: BLE001  (the student's objects may break anything)
            return {"type": f"unreadable {type(e).__name__}"}
    if isinstance(value, (list, tuple)):
        return [plain(x, depth + 1) for x in list(value)[:FULL_ELEMENTS]]
    if isinstance(value, dict):
        return {"dict": [[plain(k, depth + 1), plain(v, depth + 1)] for k, v in list(value.items())[:FULL_ELEMENTS]]}
    if isinstance(value, (set, frozenset)):
        return {"set": sorted((json.dumps(plain(x, depth + 1), sort_keys=True) for x in value))}
    return {"type": type(value).__name__}


def same(a: Any, b: Any) -> bool:
    """Whether two records (JSON data from :func:`plain`) agree: floats to ``RTOL``/``ATOL``,
    everything else exactly. Runs only on parsed JSON, so nothing in it is student code."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        if "abssum" in a:
            tol = RTOL * max(a["abssum"], b["abssum"]) + ATOL
            return (a["nd"] == b["nd"] and abs(a["sum"] - b["sum"]) <= tol
                    and abs(a["abssum"] - b["abssum"]) <= tol and same(a["sample"], b["sample"]))
        return all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
