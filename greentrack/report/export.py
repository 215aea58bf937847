"""``greentrack export``: the runs table (or one run's samples) as CSV, Parquet or JSON.

The rows are :func:`greentrack.report.frames.runs_frame` / :func:`samples_frame`, so a file
exported here and a frame built in a notebook have the same columns. Parquet needs ``pyarrow``
(``pip install 'greentrack[report]'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError

__all__ = ["EXPORT_FORMATS", "ExportResult", "export"]

EXPORT_FORMATS = ("csv", "parquet", "json")


@dataclass
class ExportResult:
    """What was exported: the file (None for standard output), the format and the row count;
    ``text`` holds the CSV/JSON when no file was given."""

    path: Path | None
    fmt: str
    rows: int
    text: str | None = None


def export(
    path: str | Path | None = None,
    *,
    fmt: str | None = None,
    db_url: str | None = None,
    project: str | None = None,
    samples_of: str | None = None,
    **filters: Any,
) -> ExportResult:
    """Export runs (filtered like ``runs_frame``) or the samples of run ``samples_of``.

    ``fmt`` defaults to the file's suffix (``.csv``, ``.parquet``/``.pq``, ``.json``), else CSV.
    Without ``path`` the CSV or JSON is returned as text (Parquet needs a file).
    """
    from greentrack.report.frames import runs_frame, samples_frame

    if fmt is None:
        suffix = Path(path).suffix.lower().lstrip(".") if path else ""
        fmt = {"pq": "parquet"}.get(suffix, suffix) if suffix in (*EXPORT_FORMATS, "pq") else "csv"
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose csv, parquet or json")
    if fmt == "parquet" and path is None:
        raise ConfigError("Parquet is binary: give a file with -o runs.parquet")
    if samples_of:
        df = samples_frame(samples_of, db=db_url)
    else:
        df = runs_frame(project, db=db_url, **filters)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                "Parquet export needs pyarrow: pip install 'greentrack[report]'"
            ) from None
    out = Path(path) if path is not None else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    text = None
    if fmt == "csv":
        text = df.to_csv(out, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    elif fmt == "json":
        text = df.to_json(out, orient="records", date_format="iso", indent=2)
    else:
        df.to_parquet(out, index=False)
    return ExportResult(path=out, fmt=fmt, rows=len(df), text=text)
