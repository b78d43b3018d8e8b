"""Receipts: projections of accounts, ledger and calculator; bills, their PDFs; e-bills; reference texts.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UP = r"""
-- ---------------------------------------------------------------- reference data (edited by ops)
-- Supplier, contact centre, how to pay, how tiers work, notices: what every bill prints. A bill copies
-- them into its snapshot when it is issued, so editing them never changes a bill already issued.
CREATE TABLE reference_texts (
    key        TEXT PRIMARY KEY,
    value      JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- projection `accounts` (accounts.events.v1)
CREATE TABLE accounts (
    account_no           TEXT PRIMARY KEY,
    address              TEXT NOT NULL,
    electric_stove       BOOLEAN NOT NULL,
    living_alone         BOOLEAN NOT NULL,
    district_office_code TEXT NOT NULL,
    opened_on            DATE NOT NULL
);
-- Effective-dated attributes (payer_name, residents, tariff_option): one row per change.
CREATE TABLE account_attributes (
    account_no     TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL,
    effective_from DATE NOT NULL,
    value          TEXT NOT NULL,
    PRIMARY KEY (account_no, name, version)
);
CREATE TABLE meters (
    account_no      TEXT NOT NULL,
    serial          TEXT NOT NULL,
    digits          INTEGER NOT NULL,
    installed_on    DATE NOT NULL,
    initial_reading NUMERIC(14, 2) NOT NULL,
    removed_on      DATE,
    final_reading   NUMERIC(14, 2),
    PRIMARY KEY (account_no, serial, installed_on)
);
CREATE TABLE district_offices (
    code    TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    address TEXT NOT NULL,
    phone   TEXT NOT NULL,
    hours   TEXT NOT NULL
);

-- ---------------------------------------------------------------- projection `account-links`
CREATE TABLE account_links (
    account_no TEXT NOT NULL,
    user_id    UUID NOT NULL,
    linked     BOOLEAN NOT NULL,
    PRIMARY KEY (account_no, user_id)
);
CREATE INDEX account_links_user ON account_links (user_id) WHERE linked;

-- ---------------------------------------------------------------- projection `ledger` (ledger.events.v1)
CREATE TABLE ledger_entries (
    account_no     TEXT NOT NULL,
    service_code   TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('opening', 'accrual', 'correction', 'payment')),
    item_id        TEXT NOT NULL,
    period         TEXT NOT NULL,
    amount         NUMERIC(16, 2) NOT NULL,
    entry_date     DATE,
    bank           TEXT,
    reason         TEXT,
    tariff         TEXT,
    estimated      BOOLEAN NOT NULL DEFAULT false,
    reversed       BOOLEAN NOT NULL DEFAULT false,
    stream_version INTEGER NOT NULL,
    PRIMARY KEY (account_no, service_code, kind, item_id)
);
CREATE INDEX ledger_entries_period ON ledger_entries (account_no, period);
-- Per account, service and month: re-rolled from ledger_entries whenever a stream changes.
CREATE TABLE service_periods (
    account_no      TEXT NOT NULL,
    service_code    TEXT NOT NULL,
    period          TEXT NOT NULL,
    opening_balance NUMERIC(16, 2) NOT NULL,
    accrued         NUMERIC(16, 2) NOT NULL,
    corrections     NUMERIC(16, 2) NOT NULL,
    paid            NUMERIC(16, 2) NOT NULL,
    closing_balance NUMERIC(16, 2) NOT NULL,
    PRIMARY KEY (account_no, service_code, period)
);

-- ---------------------------------------------------------------- projection `calculator` (calculator.events.v1)
CREATE TABLE tariff_rows (
    effective_from DATE PRIMARY KEY,
    flat           NUMERIC(12, 4) NOT NULL,
    tier1          NUMERIC(12, 4) NOT NULL,
    tier2          NUMERIC(12, 4) NOT NULL,
    tier3          NUMERIC(12, 4) NOT NULL,
    norms          JSONB NOT NULL
);
CREATE TABLE vat_rates (
    effective_from DATE PRIMARY KEY,
    rate           NUMERIC(6, 4) NOT NULL
);
CREATE TABLE readings (
    account_no   TEXT NOT NULL,
    reading_id   TEXT NOT NULL,
    meter_serial TEXT NOT NULL,
    reading_date DATE NOT NULL,
    value        NUMERIC(14, 2) NOT NULL,
    source       TEXT NOT NULL,
    PRIMARY KEY (account_no, reading_id)
);
CREATE INDEX readings_date ON readings (account_no, reading_date);
CREATE TABLE charges (
    account_no   TEXT NOT NULL,
    charge_id    TEXT NOT NULL,
    service_code TEXT NOT NULL,
    period       TEXT NOT NULL,
    charge       JSONB NOT NULL,  -- the ChargeCalculated payload, every rating line included
    PRIMARY KEY (account_no, charge_id)
);
CREATE TABLE billed_periods (
    account_no TEXT NOT NULL,
    period     TEXT NOT NULL,
    charge_ids JSONB NOT NULL,
    billed_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_no, period)
);

-- ---------------------------------------------------------------- receipts' own state (never reset by a rebuild)
CREATE TABLE receipts (
    receipt_id   UUID PRIMARY KEY,
    account_no   TEXT NOT NULL,
    period       TEXT NOT NULL,
    amount_due   NUMERIC(16, 2) NOT NULL CHECK (amount_due >= 0),
    overpayment  NUMERIC(16, 2) NOT NULL CHECK (overpayment >= 0),
    due_date     DATE NOT NULL,
    issued_at    TIMESTAMPTZ NOT NULL,
    snapshot     JSONB NOT NULL,
    content_hash TEXT NOT NULL,
    UNIQUE (account_no, period)
);
CREATE TABLE receipt_pdfs (
    receipt_id       UUID NOT NULL REFERENCES receipts (receipt_id),
    template_version TEXT NOT NULL,
    pdf              BYTEA NOT NULL,
    rendered_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (receipt_id, template_version)
);
CREATE TABLE ebill_subscriptions (
    account_no    TEXT NOT NULL,
    user_id       UUID NOT NULL,
    email         TEXT NOT NULL,
    language      TEXT NOT NULL DEFAULT 'ru',
    subscribed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_no, user_id)
);
CREATE TABLE ebill_deliveries (
    delivery_id     BIGSERIAL PRIMARY KEY,
    receipt_id      UUID NOT NULL REFERENCES receipts (receipt_id),
    email           TEXT NOT NULL,
    language        TEXT NOT NULL DEFAULT 'ru',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ,
    failed_at       TIMESTAMPTZ,
    message_id      TEXT NOT NULL,
    UNIQUE (receipt_id, email)
);
CREATE INDEX ebill_deliveries_due ON ebill_deliveries (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;

CREATE FUNCTION notify_ebill_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ebill_deliveries', '');
    RETURN NULL;
END $$;
CREATE TRIGGER ebill_deliveries_notify AFTER INSERT ON ebill_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION notify_ebill_delivery();

INSERT INTO reference_texts (key, value) VALUES
('supplier', $json${
    "name": "АО «АлматыЭнергоСбыт»",
    "bin": "040340005741",
    "address": "050012, г. Алматы, ул. Толе би, 69",
    "phone": "+7 (727) 356-99-99",
    "email": "info@esb.kz",
    "website": "www.esb.kz",
    "bank": "АО «Народный Банк Казахстана»",
    "iban": "KZ226010002000000001",
    "bic": "HSBKKZKX"
}$json$::jsonb),
('contact_center', $json${
    "phone": "+7 (727) 356-99-99",
    "email": "call-center@esb.kz",
    "hours": "ежедневно с 8:00 до 20:00",
    "address": "г. Алматы, ул. Толе би, 69"
}$json$::jsonb),
('how_to_pay', $json$[
    "В личном кабинете и мобильных приложениях банков по номеру лицевого счёта или по QR-коду с лицевой стороны.",
    "В отделениях банков второго уровня и АО «Казпочта», в терминалах и банкоматах.",
    "В кассах районных отделений АлматыЭнергоСбыт (РОЭС), адрес и часы работы вашего отделения указаны ниже.",
    "Оплатите до 25 числа месяца, следующего за расчётным; платёж зачисляется в течение 1–3 рабочих дней."
]$json$::jsonb),
('tiers_explained', $json$[
    "Дифференцированный тариф делит потребление месяца на три ступени. Каждая ступень оплачивается по своей цене: чем больше потребление, тем дороже киловатт-час сверх нормы.",
    "Нормы указаны на одного постоянно проживающего за месяц (30,5 дня); для вашего счёта они умножаются на число проживающих и пересчитываются пропорционально дням расчётного периода.",
    "I ступень — потребление в пределах первой нормы, II ступень — сверх первой нормы до второй, III ступень — всё, что сверх второй нормы.",
    "На единый тариф переводятся счета без зарегистрированных проживающих; переход между тарифами — по заявлению в РОЭС или в личном кабинете."
]$json$::jsonb),
('notices', $json$[
    "Показания принимаются с 20 по 25 число в личном кабинете, мобильном приложении и по телефону Контакт-центра.",
    "Если показания не переданы, начисление производится по среднемесячному потреблению с последующим перерасчётом по фактическим показаниям.",
    "Сообщайте об изменении числа проживающих в районное отделение в течение 10 дней."
]$json$::jsonb);
"""

DOWN = """
DROP TABLE IF EXISTS ebill_deliveries, ebill_subscriptions, receipt_pdfs, receipts, billed_periods, charges,
    readings, vat_rates, tariff_rows, service_periods, ledger_entries, account_links, district_offices, meters,
    account_attributes, accounts, reference_texts;
DROP FUNCTION IF EXISTS notify_ebill_delivery();
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
