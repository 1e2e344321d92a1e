"""The row every benchmark suite returns (``flow.py bench`` prints them and writes them as JSON)."""

from __future__ import annotations

from typing import Any


def row(name: str, value: float, unit: str, reference: float | None = None, note: str = "") -> dict[str, Any]:
    """A measured figure; ``reference`` is what it was measured side by side with, ``ratio`` value/reference."""
    return {"name": name, "value": value, "unit": unit, "reference": reference,
            "ratio": value / reference if reference else None, "note": note}
