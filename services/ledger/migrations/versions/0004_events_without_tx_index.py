"""Drop the runtime's `events_tx_order` index from the ledger's event store.

The index (tx_id, position) was kept "for diagnosis": no query of the relay, the ledger or the runtime
uses it (the relay reads by position, the primary key). Every appended event paid for its entry, and the
ledger appends the most events of all services. `tx_id` stays in the table for ad-hoc diagnosis.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_tx_order")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS events_tx_order ON events (tx_id, position)")
