"""Many processes, one run: where a process sits in a distributed job, and what it measures.

Call ``gt.track(...)`` on **every** rank. :func:`place` then decides, for this process:

- **rank / world size / local rank**: from an initialised ``torch.distributed`` process group, else
  from the launcher's environment (torchrun ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
  ``LOCAL_WORLD_SIZE``; Slurm ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``/
  ``SLURM_TASKS_PER_NODE``; Open MPI ``OMPI_COMM_WORLD_*``; MPICH/Intel MPI ``PMI_*``).
- **the run id** all ranks attach to: ``run_id=`` or ``GREENTRACK_RUN_ID`` if given; else, in a
  process group, the id rank 0 publishes through the group's key-value store; else one derived
  deterministically from the job (``TORCHELASTIC_RUN_ID`` + restart count, ``SLURM_JOB_ID`` +
  ``SLURM_STEP_ID`` + restart count, ``PMIX_NAMESPACE``) and the number of runs this process
  started before (so sequential runs of one job get distinct ids). A restarted job (torchelastic,
  Slurm requeue) gets a new run: every process's energy starts again at zero.
- **the host's CPU and DRAM** are measured by one process per node: the lowest rank on the host
  in a process group, else ``LOCAL_RANK == 0``. No double counting.
- **GPUs** (NVIDIA through NVML, AMD through amdsmi; :mod:`greentrack.meters.gpu_placement`):
  each energy counter of a node is measured by exactly one process. A rank proposes the GPUs
  it uses, per vendor, among those it sees (``CUDA_VISIBLE_DEVICES``; ``ROCR_VISIBLE_DEVICES``
  then ``HIP_VISIBLE_DEVICES``/``CUDA_VISIBLE_DEVICES``): with ``LOCAL_WORLD_SIZE`` known,
  ``visible[LOCAL_RANK]`` (several GPUs per rank: the contiguous block ``j * local_world //
  n_visible == local_rank``); when a process sees a single GPU (Slurm ``--gpus-per-task``),
  that one; with the layout unknown, every visible GPU. In a process group a counter proposed
  by several ranks on one host goes to the lowest of them, so totals are exact and per-rank
  attribution is as fine as the launcher lets it be. A MIG slice's counter is its parent GPU's
  (the rank keeps the meter's MIG note). The two dies of an MI250X share one package counter:
  it is counted once, by the lowest rank using either die, and the other die's rank records a
  warning naming the dies and that rank. Without a process group the rules alone decide:
  ranks that see the same GPUs compute each other's proposals; a rank that sees only the later
  die of a package leaves it to the rank using the first die (and says so: without a process
  group it cannot check that such a rank exists). A rank that sees no GPU measures none.

The exchange uses the process group's store (the one ``init_process_group`` rendezvoused with),
not a collective: rank 0 never waits, so a program that tracks on rank 0 only still works (rank
0 then measures its host and its own GPUs); rank ``r`` waits for ranks ``< r`` to publish, at
most ``GREENTRACK_DIST_TIMEOUT_S`` (default 300 s), after which it records its own run and says
why. Without a process group and without a job id in the environment the ranks cannot agree on
an id: each is tracked as its own run, with a warning.

Only ``sys.modules`` is consulted for ``torch``: this module never imports it.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from greentrack import hardware
from greentrack.config import Config
from greentrack.meters.base import Meter
from greentrack.meters.gpu_placement import (
    VisibleGpu,
    open_gpu_meters,
    shared_counter_note,
    visible_gpus,
)
from greentrack.store.digest import uuid5_hex
from greentrack.store.rank_events import JOINED_SOURCE, joined_message

__all__ = [
    "Layout",
    "Placement",
    "env_layout",
    "env_run_id",
    "event_id",
    "joined_event",
    "open_placement_meters",
    "place",
    "propose_gpus",
]

_NAMESPACE = uuid.UUID("5b0c1e2a-8f4e-4d0a-9a39-6772656e7472")  # fixed: ids are reproducible
_COUNTER = itertools.count()
_STORE_PREFIX = "greentrack/place"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Layout:
    """Where a process sits, as the launcher or the process group says.

    ``local_world_size`` is None when the launcher does not say how many processes share the node.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int | None
    source: str  # "torch.distributed" | "torchrun" | "slurm" | "mpi" | "pmi"


@dataclass(frozen=True)
class Placement:
    """What :func:`place` decided for this process.

    Attributes:
        rank, world_size, local_rank: this process in the job (0, 1, 0 for a plain program).
        host: this node's name.
        source: where the layout came from (``single``, ``torch.distributed``, ``torchrun``, ...).
        run_id: the id every rank attaches to (None: the run keeps its own id).
        shared: whether the ranks agreed on one run (False: each rank records its own run).
        measure_host: whether this process measures the node's CPU and DRAM.
        gpus: GPUs to measure: NVIDIA as ``CUDA_VISIBLE_DEVICES`` entries (UUID, ``MIG-<uuid>``
            for a MIG slice), AMD as ``gpu:amd-<amdsmi index>``; None means every GPU this
            process sees (the single-process behaviour).
        warnings: one-line notes to record on the run.
        measured_by: ``(what, by whom)`` for the devices this process uses that another process
            measures, e.g. ``("the node's CPU and memory", "rank 0")`` (see :func:`joined_event`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    host: str = ""
    source: str = "single"
    run_id: str | None = None
    shared: bool = True
    measure_host: bool = True
    gpus: tuple[str, ...] | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    measured_by: tuple[tuple[str, str], ...] = ()

    @property
    def owner(self) -> bool:
        """Whether this process owns the run row (status, end time): rank 0 of a shared run."""
        return self.rank == 0 or not self.shared


# -- layout -------------------------------------------------------------------------------------
def _int(env: Mapping[str, str], name: str) -> int | None:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        return None


def _slurm_tasks_on_node(tasks_per_node: str | None, node_id: int | None) -> int | None:
    """Tasks on node ``node_id`` from ``SLURM_TASKS_PER_NODE`` (``"2(x3),1"`` = 2,2,2,1)."""
    if not tasks_per_node or node_id is None:
        return None
    counts: list[int] = []
    try:
        for part in tasks_per_node.split(","):
            n, _, rep = part.partition("(x")
            counts += [int(n)] * (int(rep.rstrip(")")) if rep else 1)
    except ValueError:
        return None
    return counts[node_id] if 0 <= node_id < len(counts) else None


def env_layout(env: Mapping[str, str] | None = None) -> Layout | None:
    """The layout the launcher's environment describes, or None (not launched as a job)."""
    env = os.environ if env is None else env
    for source, r, w, lr, lw in (
        ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"),
        ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", None),
        ("mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
         "OMPI_COMM_WORLD_LOCAL_SIZE"),
        ("pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    ):  # fmt: skip
        rank, world = _int(env, r), _int(env, w)
        if rank is None or world is None:
            continue
        local_rank = _int(env, lr)
        if lw is not None:
            local_world = _int(env, lw)
        else:
            local_world = _int(env, "SLURM_NTASKS_PER_NODE") or _slurm_tasks_on_node(
                env.get("SLURM_TASKS_PER_NODE"), _int(env, "SLURM_NODEID")
            )
        if local_rank is None:
            local_rank = 0 if world == 1 else rank
            local_world = local_world if world == 1 else None
        return Layout(rank, world, local_rank, local_world, source)
    return None


def env_run_id(env: Mapping[str, str] | None = None, nth: int = 0) -> str | None:
    """A run id every process of this job derives alike, or None if the job has no id.

    ``nth`` tells apart sequential runs of one process (each rank starts runs in the same order).
    """
    env = os.environ if env is None else env
    key = None
    elastic = env.get("TORCHELASTIC_RUN_ID", "").strip()
    if elastic and elastic.lower() != "none":
        key = f"torchelastic:{elastic}:{env.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    elif env.get("SLURM_JOB_ID"):
        key = (
            f"slurm:{env['SLURM_JOB_ID']}:{env.get('SLURM_STEP_ID', '')}:"
            f"{env.get('SLURM_RESTART_COUNT', '0')}"
        )
    elif env.get("PMIX_NAMESPACE") or env.get("OMPI_MCA_ess_base_jobid"):
        key = f"mpi:{env.get('PMIX_NAMESPACE') or env.get('OMPI_MCA_ess_base_jobid')}"
    if key is None:
        return None
    return uuid5_hex(_NAMESPACE, f"{key}:{nth}")


def _process_group() -> Any | None:
    """``torch.distributed`` if the program initialised a process group (never imports torch)."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist
    except (AttributeError, RuntimeError):
        return None
    return None


# -- GPUs -----------------------------------------------------------------------------------------
def propose_gpus(visible: Sequence[_T], local_rank: int, local_world_size: int | None) -> list[_T]:
    """The GPUs a process uses, among those it sees (see the module docstring).

    Args:
        visible: GPUs this process sees (of one vendor), in the framework's order.
        local_rank: the process's rank on its node.
        local_world_size: processes on the node, or None when unknown.
    """
    n = len(visible)
    if n <= 1 or local_world_size is None or local_world_size <= 1:
        return list(visible)
    if n >= local_world_size:
        return [g for j, g in enumerate(visible) if j * local_world_size // n == local_rank]
    return [visible[local_rank]] if local_rank < n else []


def _env_share(
    by_vendor: Sequence[Sequence[VisibleGpu]], layout: Layout
) -> tuple[list[VisibleGpu], list[tuple[str, str]], list[str]]:
    """Without a process group: the GPUs this process measures, who measures the others it
    uses, and the notes (see the module docstring)."""
    lr, lw = layout.local_rank, layout.local_world_size

    def who(j: int) -> str:  # torchrun numbers the ranks of a node contiguously; others may not
        if layout.source == "torchrun":
            return f"rank {layout.rank - lr + j}"
        return "local rank 0 of this node" if j == 0 else f"local rank {j} of this node"

    mine: list[VisibleGpu] = []
    by: list[tuple[str, str]] = []
    notes: list[str] = []
    for vis in by_vendor:
        if lw is None and len(vis) > 1 and lr != 0:  # layout unknown: local rank 0 measures all
            by.append(("the node's GPUs", who(0)))
            continue
        for g in propose_gpus(vis, lr, lw):
            owner: int | None = lr
            if lw is not None and len(vis) > 1:  # every rank of the node sees these GPUs
                keys = [{p.key for p in propose_gpus(vis, j, lw)} for j in range(min(lr, lw))]
                owner = next((j for j, k in enumerate(keys) if g.key in k), lr)
            elif g.dies and g.device != g.dies[0] and (lw is None or lw > 1):
                owner = None  # the rank using the package's first die counts it
            if owner == lr:
                mine.append(g)
                continue
            by.append((g.label, who(owner) if owner is not None else f"the rank using {g.dies[0]}"))
            if owner is not None:
                notes.append(shared_counter_note(g, who(owner)) if g.dies else "")
            else:
                notes.append(
                    shared_counter_note(g, f"the rank of this job using {g.dies[0]}")
                    + "; without a process group this rank cannot check that one does (if "
                    "none does, the package is not counted): initialise torch.distributed "
                    "before gt.track"
                )
    return mine, list(dict.fromkeys(by)), [n for n in dict.fromkeys(notes) if n]


# -- the exchange ---------------------------------------------------------------------------------
def _store(dist: Any) -> Any | None:
    try:
        return dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):
        return None


def _exchange(
    dist: Any, rank: int, world: int, payload: dict[str, Any], nth: int, timeout_s: float
) -> list[dict[str, Any]] | str:
    """Publish ``payload``; return the payloads of ranks ``0..rank-1`` (or why they are missing)."""
    store = _store(dist)
    if store is None:  # a process-group backend without a store: a collective (all ranks)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, payload)
        return list(gathered[:rank])
    prefix = f"{_STORE_PREFIX}/{nth}"
    store.set(f"{prefix}/{rank}", json.dumps(payload))
    keys = [f"{prefix}/{r}" for r in range(rank)]
    if not keys:
        return []
    try:
        store.wait(keys, timedelta(seconds=timeout_s))
    except Exception as e:  # c10d raises RuntimeError or DistStoreError, by version
        return (
            f"rank {rank}: lower ranks did not start tracking within {timeout_s:g} s "
            f"({type(e).__name__}); this rank is recorded as its own run — call gt.track on every "
            "rank, or raise GREENTRACK_DIST_TIMEOUT_S"
        )
    return [json.loads(store.get(k)) for k in keys]


def place(
    run_id: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> Placement:
    """Decide this process's rank, run id, and what it measures (see the module docstring).

    Args:
        run_id: an id given by the user (``run_id=`` or ``GREENTRACK_RUN_ID``); all ranks use it.
        env: environment (default ``os.environ``).
        timeout_s: how long rank ``r`` waits for ranks ``< r`` (default
            ``GREENTRACK_DIST_TIMEOUT_S`` or 300 s).
    """
    env = os.environ if env is None else env
    if run_id:  # it names spool files and dashboard pages: a one-line error, before training
        from greentrack.security import check_run_id

        check_run_id(run_id, "run_id")
    host = hardware.hostname()
    dist = _process_group()
    layout: Layout | None = None
    if dist is not None and dist.get_world_size() > 1:
        found = env_layout(env)
        rank, world = dist.get_rank(), dist.get_world_size()
        same = found is not None and (found.rank, found.world_size) == (rank, world)
        layout = Layout(
            rank,
            world,
            found.local_rank if same and found else 0,
            found.local_world_size if same and found else None,
            "torch.distributed",
        )
    else:
        dist = None
        layout = env_layout(env)
    if layout is None or layout.world_size <= 1:
        return Placement(host=host, run_id=run_id)

    nth = next(_COUNTER)
    by_vendor, problems = visible_gpus(env)
    if dist is None:  # environment only: no exchange, rules alone decide
        mine, by, notes = _env_share(by_vendor, layout)
        if layout.local_rank != 0:  # torchrun numbers a node's ranks contiguously, others may not
            first = (
                f"rank {layout.rank - layout.local_rank}"
                if layout.source == "torchrun"
                else "local rank 0 of this node"
            )
            by.insert(0, ("the node's CPU and memory", first))
        shared_id = run_id or env_run_id(env, nth)
        warnings = [*problems, *notes]
        if shared_id is None:
            warnings.append(
                f"rank {layout.rank} of {layout.world_size}: no process group and no job id in "
                "the environment, so this rank is recorded as its own run; initialise "
                "torch.distributed before gt.track or set GREENTRACK_RUN_ID"
            )
        return Placement(
            layout.rank, layout.world_size, layout.local_rank, host, layout.source, shared_id,
            shared_id is not None, layout.local_rank == 0, tuple(g.entry for g in mine),
            tuple(warnings), tuple(by),
        )  # fmt: skip
    proposal = [
        g
        for vis in by_vendor
        for g in propose_gpus(vis, layout.local_rank, layout.local_world_size)
    ]

    if timeout_s is None:
        try:
            timeout_s = float(env.get("GREENTRACK_DIST_TIMEOUT_S", "300"))
        except ValueError:
            timeout_s = 300.0
    candidate = run_id or env_run_id(env, nth) or uuid.uuid4().hex
    payload = {"host": host, "gpus": [g.key for g in proposal], "run_id": candidate}
    lower = _exchange(dist, layout.rank, layout.world_size, payload, nth, timeout_s)
    if isinstance(lower, str):
        visible = tuple(g.entry for vis in by_vendor for g in vis)
        return Placement(
            layout.rank, layout.world_size, layout.local_rank, host, layout.source, None, False,
            True, visible, (*problems, lower),
        )  # fmt: skip
    shared_id = lower[0]["run_id"] if lower else candidate
    peers = [p for p in lower if p["host"] == host]
    owner_of: dict[str, int] = {}  # energy counter -> the lowest rank on this host proposing it
    for r, p in enumerate(lower):
        if p["host"] == host:
            for key in p["gpus"]:
                owner_of.setdefault(key, r)
    by: list[tuple[str, str]] = []
    if peers:
        first = next(r for r, p in enumerate(lower) if p["host"] == host)
        by.append(("the node's CPU and memory", f"rank {first}"))
    by += [(g.label, f"rank {owner_of[g.key]}") for g in proposal if g.key in owner_of]
    notes = [
        shared_counter_note(g, f"rank {owner_of[g.key]}")
        for g in proposal
        if g.key in owner_of and g.dies
    ]
    return Placement(
        rank=layout.rank,
        world_size=layout.world_size,
        local_rank=len(peers),
        host=host,
        source=layout.source,
        run_id=shared_id,
        shared=True,
        measure_host=not peers,
        gpus=tuple(g.entry for g in proposal if g.key not in owner_of),
        warnings=tuple(dict.fromkeys([*problems, *notes])),
        measured_by=tuple(by),
    )


# -- what the store records of each rank ----------------------------------------------------------


def event_id(run_id: str, source: str, message: str, occurrence: int = 0) -> str:
    """The deterministic ``events.id`` (32 hex digits) of a run's event.

    The ``occurrence``-th event with this (source, message) in one process gets the same id in
    every process of the run, so a warning every rank records is stored once, and a replay
    writes nothing twice; a message repeated within one process keeps each repetition.
    """
    key = json.dumps([run_id, source, message, int(occurrence)])
    return uuid5_hex(_NAMESPACE, key)


def joined_note(placement: Placement) -> str | None:
    """``measured by rank 0: the node's CPU and memory, GPU GPU-3a...``: who measures the
    devices this rank uses (None when it measures all of them itself)."""
    groups: dict[str, list[str]] = {}
    for what, by in placement.measured_by:
        groups.setdefault(by, []).append(what)
    if not groups:
        return None
    return "; ".join(f"measured by {by}: {', '.join(whats)}" for by, whats in groups.items())


def joined_event(placement: Placement, run_id: str, t_s: float) -> dict[str, Any] | None:
    """The event a rank of a shared distributed run records when it joins (None otherwise).

    Every rank writes one (level ``info``, source :data:`JOINED_SOURCE`, id from
    :func:`event_id` of its rank), even one that measures nothing and so writes no component
    row: ``processes`` in the run object lists every rank that joined (see
    :func:`greentrack.store.rank_events.parse_joined`), with 0 J and who measured its devices.
    """
    if placement.world_size <= 1 or not placement.shared:
        return None
    message = joined_message(placement.rank, placement.host, joined_note(placement))
    return {
        "id": event_id(run_id, JOINED_SOURCE, f"rank {placement.rank}"),
        "t_s": t_s,
        "level": "info",
        "source": JOINED_SOURCE,
        "message": message,
    }


def open_placement_meters(config: Config, placement: Placement) -> list[Meter]:
    """The meters of this process: host meters if it measures the node, its GPUs (not started)."""
    from greentrack.meters import open_meters

    host = placement.measure_host
    if placement.gpus is None:
        return open_meters(config, cpu=host, ram=host, node=host)
    meters = open_meters(config, gpu=False, cpu=host, ram=host, node=host)
    return meters + open_gpu_meters(placement.gpus)
