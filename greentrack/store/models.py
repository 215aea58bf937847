"""SQLAlchemy 2 models of the run store (the schema's single source, mirrored by Alembic).

Times of runs and phases are naive UTC ``DateTime`` columns (portable between SQLite and
PostgreSQL); sample and metric times are ``t_s``, float seconds since the Unix epoch (UTC).
Constraints are named so that migrations stay portable. Rows written by the tracker are
idempotent (unique keys + ``ON CONFLICT``), so a spooled checkpoint can be replayed safely.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from greentrack.store.limits import (
    CO2E_BASIS_MAX,
    COMPONENT_MAX,
    DEVICE_MAX,
    HOST_MAX,
    LEVEL_MAX,
    METHOD_MAX,
    NAME_MAX,
    PATH_MAX,
    REGION_MAX,
    REGION_ORIGIN_MAX,
    ROW_ID_LEN,
    RUN_ID_MAX,
    SOURCE_MAX,
    STATUS_MAX,
)

#: The Alembic revision the code expects; a test checks it equals the migrations' head.
SCHEMA_REVISION = "0005"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Run(Base):
    """One tracked run (all its processes and nodes)."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(RUN_ID_MAX), primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    status: Mapped[str] = mapped_column(String(STATUS_MAX), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: Wall time, seconds (monotonic clock).
    duration_s: Mapped[float | None] = mapped_column(Float)
    #: Device energy summed over components and processes, before PUE. Joules.
    energy_j: Mapped[float] = mapped_column(Float, default=0.0)
    pue: Mapped[float] = mapped_column(Float, default=1.0)
    region: Mapped[str | None] = mapped_column(String(REGION_MAX))
    region_origin: Mapped[str | None] = mapped_column(String(REGION_ORIGIN_MAX))
    #: Time-weighted emissions of facility energy (energy × PUE). Grams CO2e.
    co2e_g: Mapped[float | None] = mapped_column(Float)
    #: The same energy at the zone's static annual average. Grams CO2e.
    co2e_g_annual: Mapped[float | None] = mapped_column(Float)
    intensity_source: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    intensity_series: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    host: Mapped[str | None] = mapped_column(String(HOST_MAX))
    pid: Mapped[int | None] = mapped_column(Integer)
    world_size: Mapped[int] = mapped_column(Integer, default=1)
    #: Longest time between two checkpoints, seconds (drives crash detection).
    checkpoint_s: Mapped[float] = mapped_column(Float, default=10.0)
    checkpoint_seq: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    flops: Mapped[float | None] = mapped_column(Float)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Progress, forecast and budget: {"fraction", "predicted_energy_j", "predicted_co2e_g", ...}.
    forecast: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Amortised share of the devices' manufacturing emissions (schema 0004). Grams CO2e.
    embodied_g: Mapped[float | None] = mapped_column(Float)
    #: Its provenance: method, table rows used, lifetimes, shares, devices left out.
    embodied: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The whole node's energy from its BMC, J (0005): beside ``energy_j``, never in it.
    node_energy_j: Mapped[float | None] = mapped_column(Float)
    #: Which energy ``co2e_g`` is of: ``node``, ``components`` or ``node+components`` (0005).
    co2e_basis: Mapped[str | None] = mapped_column(String(CO2E_BASIS_MAX))
    #: That energy, J before PUE: ``co2e_g / (co2e_energy_j × pue)`` is the intensity (0005).
    co2e_energy_j: Mapped[float | None] = mapped_column(Float)


class Component(Base):
    """Energy of one device of one process of a run (cumulative, latest checkpoint)."""

    __tablename__ = "components"
    __table_args__ = (UniqueConstraint("run_id", "rank", "device", name="uq_components_device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str | None] = mapped_column(String(HOST_MAX))
    component: Mapped[str] = mapped_column(String(COMPONENT_MAX))
    device: Mapped[str] = mapped_column(String(DEVICE_MAX))
    #: Joules since the run started (device energy, before PUE).
    energy_j: Mapped[float] = mapped_column(Float, default=0.0)
    method: Mapped[str] = mapped_column(String(METHOD_MAX))
    model: Mapped[str | None] = mapped_column(String(NAME_MAX))
    seq: Mapped[int] = mapped_column(Integer, default=0)
    #: One line stating every assumption behind this device's figure (TDP source, share, ...).
    note: Mapped[str | None] = mapped_column(Text)
    #: This device's CO2e, g, time-resolved and at the annual average (0005; final checkpoint).
    co2e_g: Mapped[float | None] = mapped_column(Float)
    co2e_g_annual: Mapped[float | None] = mapped_column(Float)


class Phase(Base):
    """A named phase of a run (nestable: ``path`` is ``outer/inner``)."""

    __tablename__ = "phases"

    id: Mapped[str] = mapped_column(String(ROW_ID_LEN), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    path: Mapped[str] = mapped_column(String(PATH_MAX))
    depth: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    t0_s: Mapped[float] = mapped_column(Float)
    t1_s: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    #: Device energy within the phase, from meter reads at its boundaries. Joules.
    energy_j: Mapped[float | None] = mapped_column(Float)
    #: {device: joules} within the phase.
    components: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    co2e_g: Mapped[float | None] = mapped_column(Float)
    #: Set when the phase's energy was obtained differently from its devices' method
    #: (e.g. ``sampled`` for a window shorter than the counter's update period).
    method: Mapped[str | None] = mapped_column(Text)


class Sample(Base):
    """A point of a device's cumulative energy time series (downsampled for long runs)."""

    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("run_id", "rank", "device", "t_s", name="uq_samples_point"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer, default=0)
    device: Mapped[str] = mapped_column(String(DEVICE_MAX))
    component: Mapped[str] = mapped_column(String(COMPONENT_MAX))
    #: Seconds since the Unix epoch (UTC).
    t_s: Mapped[float] = mapped_column(Float)
    #: Joules since the run started (cumulative).
    energy_j: Mapped[float] = mapped_column(Float)
    power_w: Mapped[float | None] = mapped_column(Float)


class Metric(Base):
    """A logged metric value (``run.log(step=..., name=value)``).

    ``id`` is :func:`greentrack.store.writer.metric_id` of (run_id, key, step, t_s), computed by
    the writer: a deterministic conflict key, so a replayed metric without a step (NULL, which
    never conflicts in a unique constraint) is still written once. ``value`` is NULL for NaN;
    ±inf are stored as they are.
    """

    __tablename__ = "metrics"
    #: (run_id, key, t_s): the latest value of each metric of a run is an index lookup.
    __table_args__ = (Index("ix_metrics_run_key", "run_id", "key", "t_s"),)

    id: Mapped[str] = mapped_column(String(ROW_ID_LEN), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(NAME_MAX))
    step: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    value: Mapped[float | None] = mapped_column(Float)
    t_s: Mapped[float] = mapped_column(Float)


class Param(Base):
    """A run parameter (hyper-parameter), stored as text."""

    __tablename__ = "params"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Tag(Base):
    """A run tag (free-form key=value)."""

    __tablename__ = "tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(NAME_MAX), primary_key=True, index=True)
    value: Mapped[str] = mapped_column(Text)


class Event(Base):
    """A warning or note recorded on a run (meter failure, fallback, budget, ...)."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(ROW_ID_LEN), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    t_s: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(LEVEL_MAX))
    source: Mapped[str] = mapped_column(String(SOURCE_MAX))
    message: Mapped[str] = mapped_column(Text)
