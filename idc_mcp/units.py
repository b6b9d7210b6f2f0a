"""Sizes as text, the one way: decimal units (1 GB = 10^9 bytes, as IDC, S3 and BigQuery bill them),
thousands separators, the same number of decimals for the same unit everywhere."""

from __future__ import annotations

from typing import Literal

Unit = Literal["B", "KB", "MB", "GB", "TB"]
_FACTOR: dict[str, int] = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def size_text(size: float, unit: Unit | None = None, decimals: int = 1) -> str:
    """`size` bytes in `unit` (e.g. '12.3 GB'), or in the largest unit under 1,000 of it when `unit` is
    None ('512 B', '4.2 MB'). Whole bytes have no decimals."""
    if unit is None:
        unit = next((u for u in ("B", "KB", "MB", "GB") if abs(size) < 1000 * _FACTOR[u]), "TB")  # type: ignore[assignment]
    if unit == "B":
        return f"{size:,.0f} B"
    return f"{size / _FACTOR[unit]:,.{decimals}f} {unit}"
