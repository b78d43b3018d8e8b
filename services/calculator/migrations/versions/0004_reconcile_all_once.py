"""Reconcile every account once: billed periods that an earlier version left without their estimate (a
period closed after a later reading) get it now (`domain.reconcile.missing_estimates`).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO reconcile_requests (account_no) SELECT account_no FROM accounts
        ON CONFLICT (account_no) DO UPDATE SET version = reconcile_requests.version + 1;
        """
    )


def downgrade() -> None:
    pass
