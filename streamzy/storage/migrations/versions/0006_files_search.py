"""files and search

Attachments sealed under their room's data key (bytes, name and thumbnail), and a keyed
blind index for search: each row is an HMAC of one normalised word or prefix under a key
derived from the room's data key version, never the word itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 16:35:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'attachments',
        sa.Column('id', BIG_ID, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('room_id', BIG_ID, nullable=False),
        sa.Column('message_id', BIG_ID, nullable=True),
        sa.Column('uploader_id', BIG_ID, nullable=True),
        sa.Column('key_version', sa.Integer(), nullable=False),
        sa.Column('name_sealed', sa.LargeBinary(), nullable=False),
        sa.Column('content_type', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('thumbnail', sa.LargeBinary(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], ondelete='CASCADE',
                                name=op.f('fk_attachments_room_id_rooms')),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE',
                                name=op.f('fk_attachments_message_id_messages')),
        sa.ForeignKeyConstraint(['uploader_id'], ['users.id'], ondelete='SET NULL',
                                name=op.f('fk_attachments_uploader_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
        sa.UniqueConstraint('public_id', name=op.f('uq_attachments_public_id')),
    )
    op.create_index(op.f('ix_attachments_room_id'), 'attachments', ['room_id'], unique=False)
    op.create_index(op.f('ix_attachments_message_id'), 'attachments', ['message_id'],
                    unique=False)
    op.create_index(op.f('ix_attachments_uploader_id'), 'attachments', ['uploader_id'],
                    unique=False)
    op.create_table(
        'search_terms',
        sa.Column('message_id', BIG_ID, nullable=False),
        sa.Column('term', sa.String(length=32), nullable=False),
        sa.Column('room_id', BIG_ID, nullable=False),
        sa.Column('key_version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE',
                                name=op.f('fk_search_terms_message_id_messages')),
        # room_id is not a foreign key (like mentions.room_id): rows go with their message
        # (whose own key cascades from the room), and an unindexed foreign key would make
        # deleting a room scan this table.
        sa.PrimaryKeyConstraint('message_id', 'term', name=op.f('pk_search_terms')),
        # SQLite: the rows are the primary-key B-tree itself (no rowid table beside it):
        # each term written touches two B-trees, not three.
        sqlite_with_rowid=False,
    )
    # The lookup: one term (already specific to a room and key version), newest first.
    op.create_index('ix_search_terms_term', 'search_terms', ['term', 'message_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_search_terms_term', table_name='search_terms')
    op.drop_table('search_terms')
    op.drop_index(op.f('ix_attachments_uploader_id'), table_name='attachments')
    op.drop_index(op.f('ix_attachments_message_id'), table_name='attachments')
    op.drop_index(op.f('ix_attachments_room_id'), table_name='attachments')
    op.drop_table('attachments')
