"""Metric steps as 64-bit integers: ``run.log(step=tokens_seen)`` passes 2**31 early in training.

SQLite's INTEGER is already 64-bit, so only PostgreSQL changes (``integer`` -> ``bigint``, an
in-place rewrite of the metrics table).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "metrics", "step", type_=sa.BigInteger(), existing_type=sa.Integer(), nullable=True
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "metrics", "step", type_=sa.Integer(), existing_type=sa.BigInteger(), nullable=True
        )
