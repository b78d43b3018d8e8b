"""Receipts: bills with e-bills to send are rendered first.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UP = r"""
-- 1 when the issuing transaction queued e-bill deliveries for the bill: the renderer takes those first, so
-- a month's backlog of renders doesn't hold the mail back.
ALTER TABLE pdf_renders ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0;
DROP INDEX pdf_renders_due;
CREATE INDEX pdf_renders_due ON pdf_renders (priority DESC, next_attempt_at) WHERE failed_at IS NULL;
"""

DOWN = r"""
DROP INDEX pdf_renders_due;
ALTER TABLE pdf_renders DROP COLUMN priority;
CREATE INDEX pdf_renders_due ON pdf_renders (next_attempt_at) WHERE failed_at IS NULL;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
