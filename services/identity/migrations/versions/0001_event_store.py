"""The runtime's tables: event store (and outbox), relay state, consumer progress.

Revision ID: 0001
"""

from alembic import op

from service_runtime.schema import RUNTIME_SCHEMA_DOWN_SQL, RUNTIME_SCHEMA_SQL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(RUNTIME_SCHEMA_SQL)


def downgrade() -> None:
    op.execute(RUNTIME_SCHEMA_DOWN_SQL)
