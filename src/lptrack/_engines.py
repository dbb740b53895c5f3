"""Choosing a storage engine.

The native engine is imported only when asked for, so ``import lptrack`` works
(and the pure engine stays usable) where the extension is not built.
"""

from __future__ import annotations

from lptrack._table import ROW_WIDTH, Table

ENGINES = ("python", "native")
DEFAULT_ENGINE = "native"


def check_engine(engine: object) -> str:
    """Return ``engine`` if it names a known engine, else raise ValueError."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine  # type: ignore[return-value]


def make_table(engine: str, capacity: int, row_width: int = ROW_WIDTH, session_id: str | None = None) -> Table:
    """A new local table (``session_id=None``) or the session's shared table, created or attached."""
    check_engine(engine)
    if engine == "python":
        from lptrack._pytable import PythonTable

        return PythonTable(capacity, row_width, session_id)
    try:
        from lptrack._native import NativeTable
    except ImportError as exc:
        raise ImportError(
            "lptrack's native engine is not available (the extension is not built or failed to load); "
            "rebuild the package or pass engine='python'"
        ) from exc
    return NativeTable(capacity, row_width=row_width, session_id=session_id)
