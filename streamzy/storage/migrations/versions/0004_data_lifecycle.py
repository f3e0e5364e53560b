"""data lifecycle

Keys and data lifecycle: which master key wraps each room key, per-room message retention,
erased accounts, a hash chain over the audit trail, and a small table of shared facts
(keyring epoch, rotation checkpoint, last verified audit chain and backup, last purge).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'system_state',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_system_state')),
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain', sa.String(length=64), nullable=True))
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
    with op.batch_alter_table('room_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('master_key_id', sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_room_keys_master_key_id'), ['master_key_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('room_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_keys_master_key_id'))
        batch_op.drop_column('master_key_id')
    with op.batch_alter_table('rooms', schema=None) as batch_op:
        batch_op.drop_column('retention_days')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('chain')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
    op.drop_table('system_state')
