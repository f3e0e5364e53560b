"""identity

Second factors and step-up: sealed TOTP secrets with the last accepted time step, hashed
one-time recovery codes, passkey (WebAuthn) credentials, short-lived sign-in challenges (the
half-signed-in state lives here, never in ``sessions``), when a session last re-authenticated,
and whether an account has a second factor (read with every session resolve).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('has_second_factor', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reauth_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('signed_in_with', sa.String(length=16), nullable=False,
                                      server_default=''))
    op.create_table(
        'totp_credentials',
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('secret', sa.LargeBinary(), nullable=False),
        sa.Column('master_key_id', sa.String(length=16), nullable=True),
        sa.Column('last_step', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_totp_credentials_user_id_users')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_totp_credentials')),
    )
    op.create_index(op.f('ix_totp_credentials_master_key_id'), 'totp_credentials',
                    ['master_key_id'], unique=False)
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_recovery_codes_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    )
    op.create_index(op.f('ix_recovery_codes_user_id'), 'recovery_codes', ['user_id'],
                    unique=False)
    op.create_table(
        'webauthn_credentials',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('credential_id', sa.String(length=512), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('sign_count', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('transports', sa.String(length=128), nullable=False, server_default=''),
        sa.Column('name', sa.String(length=64), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_webauthn_credentials_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webauthn_credentials')),
        sa.UniqueConstraint('credential_id', name=op.f('uq_webauthn_credentials_credential_id')),
    )
    op.create_index(op.f('ix_webauthn_credentials_user_id'), 'webauthn_credentials',
                    ['user_id'], unique=False)
    op.create_table(
        'sign_in_challenges',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=24), nullable=False),
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('challenge', sa.LargeBinary(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('client_ip', sa.String(length=64), nullable=False, server_default=''),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_sign_in_challenges_user_id_users')),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ondelete='CASCADE',
                                name=op.f('fk_sign_in_challenges_session_id_sessions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_challenges')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_sign_in_challenges_token_hash')),
    )
    op.create_index(op.f('ix_sign_in_challenges_created_at'), 'sign_in_challenges',
                    ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sign_in_challenges_created_at'), table_name='sign_in_challenges')
    op.drop_table('sign_in_challenges')
    op.drop_index(op.f('ix_webauthn_credentials_user_id'), table_name='webauthn_credentials')
    op.drop_table('webauthn_credentials')
    op.drop_index(op.f('ix_recovery_codes_user_id'), table_name='recovery_codes')
    op.drop_table('recovery_codes')
    op.drop_index(op.f('ix_totp_credentials_master_key_id'), table_name='totp_credentials')
    op.drop_table('totp_credentials')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('signed_in_with')
        batch_op.drop_column('reauth_at')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('has_second_factor')
