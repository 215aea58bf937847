"""Which spool files belong to a run (Spool.pending): the same names as the globs
``*.jsonl``, ``<run>.*.jsonl``, ``<run>.<rank>.jsonl`` + ``<run>.<rank>.*.jsonl``, sorted."""

from __future__ import annotations

from pathlib import Path

from greentrack.store.spool import Spool

RUNS = ["a" * 32, "b" * 32]


def _globbed(folder: Path, run_id: str | None, rank: int | None) -> list[Path]:
    if run_id is None:
        return sorted(folder.glob("*.jsonl"))
    stem = f"{run_id}.{rank}" if rank is not None else f"{run_id}.*"
    return sorted({*folder.glob(f"{stem}.jsonl"), *folder.glob(f"{stem}.*.jsonl")})


def test_pending_lists_what_the_globs_list(tmp_path: Path) -> None:
    names = ["x.jsonl", ".hidden.jsonl", f"{RUNS[0]}..jsonl", f"{RUNS[0]}.jsonl"]
    for run in RUNS:
        for rank in (0, 1, 12):
            names += [f"{run}.{rank}.jsonl", f"{run}.{rank}.start.jsonl",
                      f"{run}.{rank}.0123456789ab.jsonl", f"{run}.{rank}.jsonl.tmp",
                      f"{run}.{rank}"]  # fmt: skip
    for name in names:
        (tmp_path / name).write_text("{}\n")
    (tmp_path / "rejected").mkdir()
    spool = Spool(tmp_path)
    queries = [(None, None)] + [(r, k) for r in RUNS for k in (None, 0, 1, 12, 3)]
    for run_id, rank in queries:
        assert spool.pending(run_id, rank) == _globbed(tmp_path, run_id, rank), (run_id, rank)
    assert [p.name for p in spool.pending(RUNS[1], 1)] == [
        f"{RUNS[1]}.1.0123456789ab.jsonl", f"{RUNS[1]}.1.jsonl", f"{RUNS[1]}.1.start.jsonl"
    ]  # fmt: skip


def test_no_spool_folder_has_nothing_pending(tmp_path: Path) -> None:
    assert Spool(tmp_path / "never-made").pending() == []
    assert Spool(tmp_path / "never-made").pending(RUNS[0], 0) == []
