"""Replay-safe metrics, NaN as NULL, assumption notes and phase methods.

* ``metrics.id`` becomes a deterministic text key (:func:`greentrack.store.writer.metric_id` of
  run_id, key, step, t_s) and the conflict key of every metric write. The old unique constraint
  ``(run_id, key, step, t_s)`` never fired for a metric logged without ``step=`` (NULLs never
  conflict), so a spool replayed twice doubled such metrics; the copy below keeps the first of
  each group of rows with the same key, which removes the doubles already stored.
* ``metrics.value`` becomes nullable: NaN is stored as NULL (SQLite refused it as NOT NULL and
  took the whole checkpoint's metrics with it); a NaN already stored by PostgreSQL becomes NULL.
* ``ix_metrics_run_key`` gains ``t_s``: the latest value of each metric is an index lookup.
* ``components.note`` (one line: every assumption behind a device's figure) and ``phases.method``
  (how a phase's energy was obtained, when it differs from its devices' method).

The metrics table is rebuilt (created anew, rows copied in id order, old table dropped) the same
way on SQLite and PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import math

import sqlalchemy as sa
from alembic import op

from greentrack.store.writer import metric_id

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 5000


def _metrics_table(name: str, id_type: sa.types.TypeEngine, value_nullable: bool) -> None:
    op.create_table(
        name,
        sa.Column("id", id_type, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("step", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("value", sa.Float(), nullable=value_nullable),
        sa.Column("t_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=f"fk_{name}_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("components", sa.Column("note", sa.Text(), nullable=True))
    op.add_column("phases", sa.Column("method", sa.Text(), nullable=True))

    op.drop_index("ix_metrics_run_key", table_name="metrics")
    op.rename_table("metrics", "metrics_0002")
    if bind.dialect.name == "postgresql":  # constraint/index names are per schema there
        op.execute("ALTER TABLE metrics_0002 RENAME CONSTRAINT pk_metrics TO pk_metrics_0002")
        op.execute(
            "ALTER TABLE metrics_0002 RENAME CONSTRAINT uq_metrics_point TO uq_metrics_0002_point"
        )
        op.execute(
            "ALTER TABLE metrics_0002 RENAME CONSTRAINT fk_metrics_run_id_runs "
            "TO fk_metrics_0002_run_id_runs"
        )
    _metrics_table("metrics", sa.String(32), value_nullable=True)

    insert = sa.text(
        "INSERT INTO metrics (id, run_id, key, step, value, t_s) "
        "VALUES (:id, :run_id, :key, :step, :value, :t_s) ON CONFLICT (id) DO NOTHING"
    )
    last_id = None
    while True:  # keyset pagination: constant memory on any size of store
        where = "" if last_id is None else "WHERE id > :last "
        rows = bind.execute(
            sa.text(
                f"SELECT id, run_id, key, step, value, t_s FROM metrics_0002 {where}"
                f"ORDER BY id LIMIT {_BATCH}"
            ),
            {} if last_id is None else {"last": last_id},
        ).fetchall()
        if not rows:
            break
        last_id = rows[-1][0]
        bind.execute(
            insert,
            [
                {
                    "id": metric_id(run_id, key, step, t_s),
                    "run_id": run_id,
                    "key": key,
                    "step": step,
                    "value": None if value is None or math.isnan(value) else value,
                    "t_s": t_s,
                }
                for _, run_id, key, step, value, t_s in rows
            ],
        )
    op.drop_table("metrics_0002")
    op.create_index("ix_metrics_run_key", "metrics", ["run_id", "key", "t_s"])


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ix_metrics_run_key", table_name="metrics")
    op.rename_table("metrics", "metrics_0003")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE metrics_0003 RENAME CONSTRAINT pk_metrics TO pk_metrics_0003")
        op.execute(
            "ALTER TABLE metrics_0003 RENAME CONSTRAINT fk_metrics_run_id_runs "
            "TO fk_metrics_0003_run_id_runs"
        )
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("step", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("t_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_metrics_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
        sa.UniqueConstraint("run_id", "key", "step", "t_s", name="uq_metrics_point"),
    )
    op.execute(  # NULL (NaN) values cannot go back into a NOT NULL column
        "INSERT INTO metrics (run_id, key, step, value, t_s) "
        "SELECT run_id, key, step, value, t_s FROM metrics_0003 WHERE value IS NOT NULL "
        "ORDER BY t_s"
    )
    op.drop_table("metrics_0003")
    op.create_index("ix_metrics_run_key", "metrics", ["run_id", "key"])
    op.drop_column("phases", "method")
    op.drop_column("components", "note")
