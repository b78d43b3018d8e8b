"""Identity's tables: the users read model, credentials, one-time tokens, the outgoing mail queue.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Read model of the user:{user_id} streams, written in the appending transaction.
        CREATE TABLE users (
            user_id         UUID PRIMARY KEY,
            email           TEXT NOT NULL,
            email_verified  BOOLEAN NOT NULL DEFAULT false,
            full_name       TEXT NOT NULL,
            language        TEXT NOT NULL CHECK (language IN ('ru', 'kk', 'en')),
            version         INTEGER NOT NULL,
            registered_at   TIMESTAMPTZ NOT NULL,
            updated_at      TIMESTAMPTZ NOT NULL
        );
        -- One account per address, whatever its case: the guard of registration and e-mail changes.
        CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

        -- The argon2id hash of each user's password. Never in an event.
        CREATE TABLE credentials (
            user_id        UUID PRIMARY KEY,
            password_hash  TEXT NOT NULL,
            changed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        -- Forgotten-password links: SHA-256 of the token only; single use, expiring.
        CREATE TABLE password_reset_tokens (
            token_hash  TEXT PRIMARY KEY,
            user_id     UUID NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at  TIMESTAMPTZ NOT NULL,
            used_at     TIMESTAMPTZ
        );
        CREATE INDEX password_reset_tokens_open ON password_reset_tokens (user_id) WHERE used_at IS NULL;

        -- E-mail change confirmations: SHA-256 of the token only; the latest request of a user wins.
        CREATE TABLE email_change_requests (
            token_hash  TEXT PRIMARY KEY,
            change_id   UUID NOT NULL UNIQUE,
            user_id     UUID NOT NULL,
            old_email   TEXT NOT NULL,
            new_email   TEXT NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            expires_at  TIMESTAMPTZ NOT NULL,
            closed_at   TIMESTAMPTZ,
            outcome     TEXT CHECK (outcome IN ('confirmed', 'superseded'))
        );
        CREATE INDEX email_change_requests_open ON email_change_requests (user_id) WHERE closed_at IS NULL;

        -- Mail to deliver, written in the transaction of the change it reports; the worker sends it.
        CREATE TABLE outbound_mail (
            mail_id          UUID PRIMARY KEY,
            kind             TEXT NOT NULL,
            user_id          UUID,
            to_address       TEXT NOT NULL,
            language         TEXT NOT NULL,
            subject          TEXT NOT NULL,
            text_body        TEXT NOT NULL,
            html_body        TEXT NOT NULL,
            sensitive        BOOLEAN NOT NULL DEFAULT false,
            created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            locked_until     TIMESTAMPTZ,
            last_error       TEXT,
            sent_at          TIMESTAMPTZ,
            failed_at        TIMESTAMPTZ
        );
        CREATE INDEX outbound_mail_due ON outbound_mail (next_attempt_at)
            WHERE sent_at IS NULL AND failed_at IS NULL;

        CREATE FUNCTION notify_outbound_mail() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('outbound_mail', '');
            RETURN NULL;
        END $$ LANGUAGE plpgsql;

        CREATE TRIGGER outbound_mail_queued AFTER INSERT ON outbound_mail
            FOR EACH STATEMENT EXECUTE FUNCTION notify_outbound_mail();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS outbound_mail_queued ON outbound_mail;
        DROP FUNCTION IF EXISTS notify_outbound_mail();
        DROP TABLE IF EXISTS outbound_mail, email_change_requests, password_reset_tokens, credentials, users;
        """
    )
