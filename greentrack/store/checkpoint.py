"""The unit of delivery to the store: a :class:`Checkpoint` of one run and rank.

A checkpoint is everything new since the previous one (samples, metrics, events, phases) plus the
latest cumulative state (components, run fields). It is a plain dataclass of JSON-able rows: the
writer (:mod:`greentrack.store.writer`) turns it into one transaction, the spool
(:mod:`greentrack.store.spool`) into one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Checkpoint"]


@dataclass
class Checkpoint:
    """A batch for the store. Lists hold only rows new since the last checkpoint.

    ``run`` holds the run row's latest fields (times as naive UTC datetimes); ``components``
    the latest cumulative energy per device of this process.
    """

    run_id: str
    rank: int
    seq: int
    run: dict[str, Any] = field(default_factory=dict)
    owner: bool = True  # whether this process may update the run row (rank 0)
    components: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: phase path -> g CO2e per joule for this rank's rows of that path still without CO2e (the
    #: occurrences past those accounted one by one; see ``greentrack.run._SPANS_MAX``)
    phase_fill: dict[str, float] = field(default_factory=dict)

    def merge(self, newer: Checkpoint) -> Checkpoint:
        """One checkpoint equivalent to writing ``self`` then ``newer``."""
        phases = {p["id"]: p for p in self.phases}
        phases.update({p["id"]: p for p in newer.phases})
        return Checkpoint(
            run_id=self.run_id,
            rank=self.rank,
            seq=max(self.seq, newer.seq),
            run={**self.run, **newer.run},
            owner=self.owner,
            components=newer.components or self.components,
            samples=self.samples + newer.samples,
            phases=list(phases.values()),
            metrics=self.metrics + newer.metrics,
            events=self.events + newer.events,
            params={**self.params, **newer.params},
            tags={**self.tags, **newer.tags},
            phase_fill={**self.phase_fill, **newer.phase_fill},
        )

    @classmethod
    def combine(cls, cps: Sequence[Checkpoint]) -> Checkpoint:
        """One checkpoint equivalent to writing ``cps`` in order (like chained :meth:`merge`,
        in linear time). ``cps`` must be non-empty and of one run and rank."""
        first, last = cps[0], cps[-1]
        run: dict[str, Any] = {}
        phases: dict[str, dict[str, Any]] = {}
        params: dict[str, str] = {}
        tags: dict[str, str] = {}
        components: list[dict[str, Any]] = []
        fill: dict[str, float] = {}
        for cp in cps:
            fill.update(cp.phase_fill)
            run.update(cp.run)
            phases.update({p["id"]: p for p in cp.phases})
            params.update(cp.params)
            tags.update(cp.tags)
            components = cp.components or components
        return cls(
            run_id=first.run_id,
            rank=first.rank,
            seq=max(cp.seq for cp in cps),
            run=run,
            owner=last.owner,
            components=components,
            samples=[x for cp in cps for x in cp.samples],
            phases=list(phases.values()),
            metrics=[x for cp in cps for x in cp.metrics],
            events=[x for cp in cps for x in cp.events],
            params=params,
            tags=tags,
            phase_fill=fill,
        )

    def split_user_data(self) -> tuple[Checkpoint, Checkpoint | None]:
        """``(this checkpoint without the user's metrics, params and tags, a checkpoint of only
        those)``; the second is None when there are none. Energy, samples and phases stay in the
        first: they are what a store that refuses the user's values must still get."""
        if not (self.metrics or self.params or self.tags):
            return self, None
        core = dataclasses.replace(self, metrics=[], params={}, tags={})
        user = Checkpoint(self.run_id, self.rank, self.seq, owner=False, metrics=self.metrics,
                          params=self.params, tags=self.tags)  # fmt: skip
        return core, user
