"""TDP and threads of a CPU model, from two shipped tables: the lookup the CPU estimate starts from.

TDP per package: CodeCarbon's shipped ``codecarbon/data/hardware/cpu_power.csv`` (MIT; read
here with :mod:`csv`, CodeCarbon itself is not imported), else the ``tdp_w`` of the thread
table. Threads per model: ``greentrack/data/cpu_specs.csv``, a subset of Boavizta's
``boaviztapi/data/crowdsourcing/cpu_specs.csv`` (AGPL-3.0; name, cores, threads, TDP).
Names are matched as CodeCarbon matches them: exact name, then the name without ``(R)``,
``(TM)``, ``CPU @ x GHz``, ``n-Core Processor``, then the most specific table entry whose
words all appear in the model name (ties with different values count as no match).

:func:`lookup_cpu_spec` keeps its answer in memory and in ``$GREENTRACK_HOME/cache/cpu_spec.json``
(matching against the ~5,000-row table takes tens of milliseconds). How the figures are scaled to
what this machine sees is :mod:`greentrack.meters.cpu_model`.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CpuSpec",
    "TdpMatch",
    "cpu_power_table_path",
    "cpu_specs_path",
    "load_tdp_table",
    "load_thread_table",
    "lookup_cpu_spec",
    "match_tdp",
]


def cpu_power_table_path() -> Path | None:
    """Where CodeCarbon's ``cpu_power.csv`` lies, without importing CodeCarbon; None if absent."""
    import importlib.util

    spec = importlib.util.find_spec("codecarbon")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "data" / "hardware" / "cpu_power.csv"
        if path.is_file():
            return path
    return None


def cpu_specs_path() -> Path:
    """``greentrack/data/cpu_specs.csv``: threads (and TDP) per CPU model, from Boavizta."""
    return Path(__file__).resolve().parent.parent / "data" / "cpu_specs.csv"


@functools.lru_cache(maxsize=4)
def load_tdp_table(path: Path) -> dict[str, float]:
    """CPU model name -> TDP (W) from a ``Name,TDP`` CSV. Rows that do not parse are skipped."""
    import csv  # (the tables are read only when the cache in GREENTRACK_HOME has no answer)

    table: dict[str, float] = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        try:
            i_name, i_tdp = header.index("Name"), header.index("TDP")
        except ValueError:
            return table
        for row in rows:
            try:
                name, tdp = row[i_name].strip(), float(row[i_tdp])
            except (IndexError, ValueError):
                continue
            if name and tdp > 0:
                table.setdefault(name, tdp)
    return table


@functools.lru_cache(maxsize=4)
def load_thread_table(path: Path) -> dict[str, tuple[int, float | None]]:
    """CPU model name -> ``(threads per package, TDP in W or None)`` from ``cpu_specs.csv``."""
    import csv

    table: dict[str, tuple[int, float | None]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            try:
                name, threads = (row["name"] or "").strip(), int(row["threads"])
                tdp = float(row["tdp_w"]) if row.get("tdp_w") else None
            except (KeyError, TypeError, ValueError):
                continue
            if name and threads > 0:
                table.setdefault(name, (threads, tdp if tdp and tdp > 0 else None))
    return table


_NOISE = [
    r"\((?:r|tm)\)",  # Intel(R) Core(TM)
    r"\bcpu\s*@\s*[\d.]+\s*ghz\b",  # CPU @ 2.40GHz
    r"@\s*[\d.]+\s*ghz\b",
    r"\b\d+-core\b",  # 64-Core
    r"\bprocessor\b",
    r"\bcpu\b",
    r"\bwith radeon .*$",  # AMD Ryzen 7 5800U with Radeon Graphics
]


@functools.cache
def _noise_re() -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in _NOISE))


def _normalise(name: str) -> str:
    return " ".join(_noise_re().sub(" ", name.lower()).split())


def _match_name(model: str, table: Mapping[str, object]) -> str | None:
    """The entry of ``table`` naming ``model`` (see the module docstring), or None."""
    lowered = {name.lower(): name for name in table}
    if (hit := lowered.get(model.strip().lower())) is not None:
        return hit
    norm = _normalise(model)
    words = set(norm.split())
    # Only entries that can match are normalised (the slow part): every word of a normalised
    # name is a substring of the lowercased name, so an entry equal to ``norm`` contains all of
    # its words, and a subset entry contains one of its words that has a digit.
    numbered = [w for w in words if any(c.isdigit() for c in w)]
    by_norm: dict[str, str] = {}
    for name in table:
        low = name.lower()
        if any(w in low for w in numbered) or all(w in low for w in words):
            by_norm.setdefault(_normalise(name), name)
    if norm and (hit := by_norm.get(norm)) is not None:
        return hit
    best: list[str] = []
    best_len = 0
    for cand_norm, name in by_norm.items():
        cand = cand_norm.split()
        # the table entry's words all in the model name, and one of them a model number
        if cand and set(cand) <= words and any(c.isdigit() for c in cand_norm):
            if len(cand) > best_len:
                best, best_len = [name], len(cand)
            elif len(cand) == best_len:
                best.append(name)
    if best and len({repr(table[n]) for n in best}) == 1:
        return best[0]
    return None


class TdpMatch(NamedTuple):
    """The TDP found for a CPU model in CodeCarbon's table.

    Attributes:
        model: the model name as detected.
        tdp_w: thermal design power of one package, or None when the table lacks the model.
            Units: W.
        matched: the table entry used, or None.
        source: where ``tdp_w`` comes from, in words.
    """

    model: str
    tdp_w: float | None
    matched: str | None
    source: str


def match_tdp(model: str, table: Mapping[str, float]) -> TdpMatch:
    """Find ``model``'s TDP in ``table`` (see the module docstring); ``tdp_w`` None if absent."""
    hit = _match_name(model, table)
    if hit is None:
        return TdpMatch(model, None, None, "model not in codecarbon cpu_power.csv")
    return TdpMatch(model, table[hit], hit, f"codecarbon cpu_power.csv: {hit}")


class CpuSpec(NamedTuple):
    """What the tables say about one CPU model (one package).

    Attributes:
        model: the model name as detected.
        tdp_w: TDP of one package, or None when no table knows it. Units: W.
        tdp_source: the table and entry ``tdp_w`` comes from, or why there is none.
        threads: hardware threads of one package, or None when the thread table lacks it.
        threads_source: the table and entry ``threads`` comes from, or why there is none.
        threads_tdp_w: the TDP in the same row of the thread table, or None: a VM's share is
            taken from one row (TDP and threads of the same source). Units: W.
    """

    model: str
    tdp_w: float | None
    tdp_source: str
    threads: int | None
    threads_source: str
    threads_tdp_w: float | None = None


def _lookup(model: str, cc_path: Path | None, specs_path: Path) -> CpuSpec:
    tdp = match_tdp(model, load_tdp_table(cc_path)) if cc_path else None
    specs = load_thread_table(specs_path) if specs_path.is_file() else {}
    hit = _match_name(model, specs) if specs else None
    threads = specs[hit][0] if hit else None
    row_tdp = specs[hit][1] if hit else None
    t_src = f"Boavizta cpu_specs.csv: {hit}" if hit else "model not in Boavizta cpu_specs.csv"
    if tdp is not None and tdp.tdp_w is not None:
        return CpuSpec(model, tdp.tdp_w, tdp.source, threads, t_src, row_tdp)
    if row_tdp is not None:
        return CpuSpec(model, row_tdp, t_src, threads, t_src, row_tdp)
    why = "codecarbon cpu_power.csv not found" if cc_path is None else tdp.source  # type: ignore[union-attr]
    return CpuSpec(model, None, f"{why}, nor a TDP in Boavizta cpu_specs.csv", threads, t_src)


@functools.lru_cache(maxsize=16)
def lookup_cpu_spec(model: str) -> CpuSpec:
    """TDP and threads of ``model`` from the two tables (see the module docstring).

    Matching against the ~5,000-row table takes tens of milliseconds, so the result is kept in
    memory for the process and in ``$GREENTRACK_HOME/cache/cpu_spec.json``, keyed by the model
    and both table files' paths and modification times.
    """
    cc_path = cpu_power_table_path()
    specs_path = cpu_specs_path()
    stamps = [f"{p}:{p.stat().st_mtime_ns}" for p in (cc_path, specs_path) if p and p.exists()]
    key = "|".join([model, *stamps])
    home = Path(os.environ.get("GREENTRACK_HOME") or Path.home() / ".greentrack").expanduser()
    cache = home / "cache" / "cpu_spec.json"
    try:
        entries = json.loads(cache.read_text(encoding="utf-8"))
        got = entries[key]
        return CpuSpec(model, got["tdp_w"], got["tdp_source"], got["threads"],
                       got["threads_source"], got["threads_tdp_w"])  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        entries = None
    spec = _lookup(model, cc_path, specs_path)
    try:
        if not isinstance(entries, dict):
            entries = {}
        entries = {k: v for k, v in list(entries.items())[-15:]}  # a few models (tests, hosts)
        entries[key] = {"tdp_w": spec.tdp_w, "tdp_source": spec.tdp_source,
                        "threads": spec.threads, "threads_source": spec.threads_source,
                        "threads_tdp_w": spec.threads_tdp_w}  # fmt: skip
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs the lookup next time
    return spec
