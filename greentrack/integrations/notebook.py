"""Notebooks: the ``%%greentrack`` cell magic measures one cell.

    %load_ext greentrack.integrations.notebook

    %%greentrack finetune --project cifar --tag lr=3e-4
    for epoch in range(3):
        with gt_run.phase("epoch"):
            train_one_epoch()

The cell runs in the notebook's namespace inside ``gt.track(...)``; the run is ``gt_run`` in the
cell, its summary is printed (``--quiet``: not) and kept as ``gt_summary``. An exception in the
cell marks the run ``failed`` and propagates as usual. ``gt.track`` works in notebooks as
anywhere else; the magic only saves the indentation.

Options: ``NAME`` (default ``cell``), ``--project``, ``--db``, ``--region``, ``--interval``
(seconds), ``--tag KEY=VALUE`` and ``--param KEY=VALUE`` (repeatable), ``--quiet``.
IPython is needed only by :func:`load_ipython_extension`; :func:`run_cell` is plain Python.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import MutableMapping
from typing import Any

from greentrack.errors import ConfigError

__all__ = ["load_ipython_extension", "parse_line", "run_cell"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no SystemExit inside a notebook
        raise ConfigError(f"%%greentrack: {message}; e.g. %%greentrack NAME --project P")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%greentrack", add_help=False)
    p.add_argument("name", nargs="?", default="cell")
    p.add_argument("--project")
    p.add_argument("--db")
    p.add_argument("--region")
    p.add_argument("--interval", type=float, dest="interval_s")
    p.add_argument("--tag", action="append", default=[], dest="tags")
    p.add_argument("--param", action="append", default=[], dest="params")
    p.add_argument("--quiet", action="store_true")
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"%%greentrack --{what} {item!r} must be KEY=VALUE")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def parse_line(line: str) -> dict[str, Any]:
    """The magic's line -> keyword arguments of :func:`greentrack.track` (plus ``name``,
    ``quiet``). Raises a one-line :class:`~greentrack.errors.ConfigError` for bad options."""
    try:
        argv = shlex.split(line)
    except ValueError as e:
        raise ConfigError(f"%%greentrack: cannot parse {line!r} ({e})") from None
    ns = _parser().parse_args(argv)
    kwargs = {k: v for k, v in vars(ns).items() if v is not None and k not in ("tags", "params")}
    kwargs["tags"] = _pairs(ns.tags, "tag")
    kwargs["params"] = _pairs(ns.params, "param")
    return kwargs


def run_cell(line: str, cell: str, namespace: MutableMapping[str, Any], shell: Any = None) -> Any:
    """Run ``cell`` in ``namespace`` inside a tracked run; return its summary.

    Args:
        line: the options after ``%%greentrack``.
        cell: the cell's source.
        namespace: where the cell runs (the notebook's ``user_ns``).
        shell: the IPython shell, if any (its ``transform_cell`` handles ``%magics`` and ``!``).
    """
    from greentrack.tracker import track

    kwargs = parse_line(line)
    name, quiet = kwargs.pop("name"), kwargs.pop("quiet")
    source = shell.transform_cell(cell) if shell is not None else cell
    code = compile(source, f"<%%greentrack {name}>", "exec")
    with track(name, **kwargs) as run:
        namespace["gt_run"] = run
        exec(code, namespace)  # the cell's own code, as IPython runs it
    summary = run.summary()
    namespace["gt_summary"] = summary
    if not quiet:
        print(summary)
    return summary


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext greentrack.integrations.notebook``: registers ``%%greentrack``."""

    def greentrack(line: str, cell: str) -> None:
        run_cell(line, cell, ipython.user_ns, ipython)

    ipython.register_magic_function(greentrack, magic_kind="cell", magic_name="greentrack")
