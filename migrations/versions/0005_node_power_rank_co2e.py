"""Whole-node power beside the components, and every rank's CO2e.

* ``components.co2e_g`` / ``components.co2e_g_annual`` (nullable float): each device's CO2e
  (time-resolved / at the zone's annual average), grams, written with a rank's final
  checkpoint. The run's ``co2e_g`` is their sum over every rank (before, only rank 0's
  devices were counted in a multi-rank run); NULL for rows recorded before this revision.
* ``runs.node_energy_j`` (nullable float): the whole node's energy from its BMC (IPMI DCMI or
  Redfish), joules, summed over the run's nodes: shown *beside* ``runs.energy_j`` (the
  components), never added to it. NULL without a node meter.
* ``runs.co2e_basis`` (nullable string): which energy ``co2e_g`` is of: ``node``,
  ``components``, or ``node+components`` (some ranks on each); ``runs.co2e_energy_j``
  (nullable float): that energy, joules, before PUE (so ``co2e_g / (co2e_energy_j × pue)`` is
  the time-weighted intensity).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("components") as batch:
        batch.add_column(sa.Column("co2e_g", sa.Float(), nullable=True))
        batch.add_column(sa.Column("co2e_g_annual", sa.Float(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("node_energy_j", sa.Float(), nullable=True))
        batch.add_column(sa.Column("co2e_basis", sa.String(32), nullable=True))
        batch.add_column(sa.Column("co2e_energy_j", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("co2e_energy_j")
        batch.drop_column("co2e_basis")
        batch.drop_column("node_energy_j")
    with op.batch_alter_table("components") as batch:
        batch.drop_column("co2e_g_annual")
        batch.drop_column("co2e_g")
