"""Receipts: the queue of PDFs to render, filled when a bill is issued (rendered by the worker's renderer).

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UP = r"""
-- One row per bill whose PDF is still to be rendered: inserted in the transaction that issues the bill,
-- deleted in the transaction that stores its PDF (receipt_pdfs). The worker's renderer claims rows with
-- FOR UPDATE SKIP LOCKED plus a lease (locked_until), retries a failed render with backoff
-- (next_attempt_at, last_error) and gives up after a few attempts (failed_at). The backlog lives here,
-- not in any process's memory: issuing a bill only adds a row, however far behind the renders are.
CREATE TABLE pdf_renders (
    receipt_id      UUID PRIMARY KEY REFERENCES receipts (receipt_id),
    queued_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    failed_at       TIMESTAMPTZ
);
CREATE INDEX pdf_renders_due ON pdf_renders (next_attempt_at) WHERE failed_at IS NULL;

CREATE FUNCTION notify_pdf_render() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pdf_renders', '');
    RETURN NULL;
END $$;
CREATE TRIGGER pdf_renders_notify AFTER INSERT ON pdf_renders
    FOR EACH STATEMENT EXECUTE FUNCTION notify_pdf_render();
"""

DOWN = r"""
DROP TABLE IF EXISTS pdf_renders;
DROP FUNCTION IF EXISTS notify_pdf_render();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
