"""Embodied emissions on the run.

* ``runs.embodied_g`` (nullable float): the run's amortised share of the manufacturing emissions
  of the devices it used, grams CO2e (:mod:`greentrack.carbon.embodied`). NULL for runs
  recorded before this revision, or where it could not be computed.
* ``runs.embodied`` (nullable JSON): its provenance: method, table, and per device the table
  row used, TE, lifetime, utilisation, share, source, scope and uncertainty; and the devices
  left out for want of a row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("embodied_g", sa.Float(), nullable=True))
        batch.add_column(sa.Column("embodied", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("embodied")
        batch.drop_column("embodied_g")
