"""Every example runs as a user runs it (``python examples/X.py`` in a folder of their own) and
writes nothing into the folder it is started from, nor into the checkout (issue 17, item 8):
outputs go to ``--out`` or a new temporary folder, the store to ``GREENTRACK_HOME``.

A new file in ``examples/`` is picked up by the glob: give it fast arguments in ``ARGS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (REPO / "examples").glob("*.py"))

#: Fast arguments per example (the examples' own flags; defaults otherwise).
ARGS: dict[str, list[str]] = {
    "quickstart.py": ["--epochs", "1"],
    "shared_machine.py": ["--seconds", "0.5"],
    "report_pricetag.py": ["--epochs", "1"],
    "bench_early_exit.py": ["--suite", "tiny"],
    "bench_models.py": ["--steps", "5"],
    "distributed_ddp.py": ["--epochs", "1"],
    "hf_callback.py": ["--epochs", "1"],
    "lightning_callback.py": ["--epochs", "1"],
}
#: Examples that take more than a few seconds (training, several processes).
SLOW = {
    "report_pricetag.py",
    "bench_early_exit.py",
    "bench_models.py",
    "distributed_ddp.py",
    "hf_callback.py",
    "lightning_callback.py",
}


def checkout_entries() -> set[str]:
    """The checkout's top-level entries and everything under examples/ (caches aside)."""
    out = {p.name for p in REPO.iterdir()}
    out |= {
        str(p.relative_to(REPO))
        for p in (REPO / "examples").rglob("*")
        if "__pycache__" not in p.parts
    }
    return out


def test_every_example_has_a_docstring_and_is_listed() -> None:
    assert EXAMPLES, "no examples found"
    for name in EXAMPLES:
        text = (REPO / "examples" / name).read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{name} has no module docstring"
    assert set(ARGS) <= set(EXAMPLES)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in EXAMPLES]
)
def test_example_writes_nothing_where_it_is_started(name: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if name == "hf_callback.py":
        pytest.importorskip("transformers")
    if name == "lightning_callback.py":
        pytest.importorskip("lightning")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    home = tmp_path / "home"
    scratch = tmp_path / "tmp"  # the examples' temporary folders land here, not in /tmp
    scratch.mkdir()
    env = {
        **os.environ,
        "GREENTRACK_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(scratch),
        "MPLBACKEND": "Agg",
    }
    before = checkout_entries()
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *ARGS.get(name, [])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(cwd)) == [], f"{name} wrote into the folder it was started from"
    new = checkout_entries() - before
    assert not new, f"{name} wrote into the checkout: {sorted(new)}"
