"""Leave room in the pages of the tables updated in place, so that updates stay on the page (HOT).

`ledger_periods`, `ledger_period_streams` and `ledger_streams` are upserted by every batch, and their
updates never touch an indexed column: with free space on the page, PostgreSQL writes the new row
version beside the old one and skips the index insert (a heap-only tuple). Full pages (the default
fillfactor 100) force a new index entry per update. Existing pages keep their layout until rewritten
(`VACUUM FULL` or a rebuild), new ones get the room.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("ledger_periods", "ledger_period_streams", "ledger_streams")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
