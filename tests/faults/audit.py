"""The audit after a fault campaign: the services' stores and the public API against the simulator's
own record of what it sent (`backoffice_simulator.ledger.SimLedger`), to the tiyn.

What is compared, per copy (the clean twin and the chaotic copy) and account:
- payments: the ledger's list (id, date, amount, bank) is exactly the simulator's live payments, and
  its reversed ones exactly the cancelled ones; paid per month and the opening balance are the
  simulator's; every month's closing = opening + accrued + corrections − paid, and the next month
  opens with it;
- accrued: the ledger's accrual of each month is the sum of the calculator's charges of that month
  (the rating is the calculator's, not the simulator's to know), and over the history months the
  chaotic copy's accrued + corrections equal its clean twin's (same households, no chaos);
- corrections: each month's are the back-office's corrections plus the calculator's estimate reversals;
- readings: the calculator holds exactly the simulator's readings (date and value), each rated once;
- bills: exactly one per account and closed month it was open in; the charges on it are the ones its
  PeriodBilled names, with the calculator's totals; its money adds up; each payment on it is one the
  simulator sent in that month; receipts' own copy of the balances equals the ledger's;
- nothing applied twice: one PaymentReceived per bank payment id, one PaymentReversed per cancelled one,
  one AccrualPosted per charge, one AccountOpened per account, one ReadingSubmitted per reading, one
  ChargeCalculated per charge id, one PeriodBilled and one ReceiptIssued per account and month;
- dead letters: the distinct source messages in every `.dlq` topic are exactly the malformed ones sent.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from backoffice_simulator.generator import Month, almaty_today
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.wire import OutMessage
from tests.faults.campaign import Campaign, db_url

ZERO = Decimal("0.00")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


async def _rows(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(sql, params)
        return list(await cur.fetchall())


@dataclass
class Stores:
    """What the services hold for the campaign's accounts (prefix match), read straight from their stores."""

    payments: list[tuple[Any, ...]]
    periods: list[tuple[Any, ...]]
    ledger_events: list[tuple[Any, ...]]
    accounts_events: list[tuple[Any, ...]]
    readings: list[tuple[Any, ...]]
    charges: list[tuple[Any, ...]]
    reversals: list[tuple[Any, ...]]
    period_billing: list[tuple[Any, ...]]
    calculator_events: list[tuple[Any, ...]]
    receipts: list[tuple[Any, ...]]
    receipt_events: list[tuple[Any, ...]]
    service_periods: list[tuple[Any, ...]]
    event_totals: dict[str, int]


async def load_stores(admin: str, prefixes: tuple[str, ...]) -> Stores:
    like = [p + "%" for p in prefixes]
    ledger, calc, rec, acc = (db_url(admin, d) for d in ("ledger", "calculator", "receipts", "accounts"))
    totals: dict[str, int] = {}
    for service in ("identity", "accounts", "ledger", "calculator", "receipts"):
        row = (await _rows(db_url(admin, service), "SELECT count(*), count(DISTINCT event_id) FROM events"))[
            0
        ]
        totals[service] = int(row[0])
        totals[f"{service}_distinct_ids"] = int(row[1])
    by_account = "payload->>'account_no' LIKE ANY(%s)"
    return Stores(
        payments=await _rows(
            ledger,
            "SELECT account_no, payment_id, paid_on, amount, bank, reversed FROM ledger_payments"
            " WHERE account_no LIKE ANY(%s)",
            (like,),
        ),
        periods=await _rows(
            ledger,
            "SELECT account_no, period, opening_balance, accrued, corrections, paid, closing_balance"
            " FROM ledger_periods WHERE account_no LIKE ANY(%s) AND service_code = 'electricity'"
            " ORDER BY account_no, period",
            (like,),
        ),
        ledger_events=await _rows(
            ledger, f"SELECT event_type, payload FROM events WHERE {by_account}", (like,)
        ),
        accounts_events=await _rows(
            acc, f"SELECT event_type, payload FROM events WHERE {by_account}", (like,)
        ),
        readings=await _rows(
            calc,
            "SELECT account_no, reading_id, reading_date, value, source FROM readings WHERE account_no LIKE ANY(%s)",
            (like,),
        ),
        charges=await _rows(
            calc,
            "SELECT account_no, charge_id, period, estimated, total, reading_id FROM charges"
            " WHERE account_no LIKE ANY(%s)",
            (like,),
        ),
        reversals=await _rows(
            calc,
            "SELECT account_no, correction_id, period, amount FROM estimate_reversals WHERE account_no LIKE ANY(%s)",
            (like,),
        ),
        period_billing=await _rows(
            calc,
            "SELECT account_no, period, status, charge_ids FROM period_billing WHERE account_no LIKE ANY(%s)",
            (like,),
        ),
        calculator_events=await _rows(
            calc, f"SELECT event_type, payload FROM events WHERE {by_account}", (like,)
        ),
        receipts=await _rows(
            rec,
            "SELECT account_no, period, amount_due, overpayment, snapshot FROM receipts WHERE account_no LIKE ANY(%s)",
            (like,),
        ),
        receipt_events=await _rows(
            rec, f"SELECT event_type, stream_id, payload FROM events WHERE {by_account}", (like,)
        ),
        service_periods=await _rows(
            rec,
            "SELECT account_no, period, opening_balance, accrued, corrections, paid, closing_balance"
            " FROM service_periods WHERE account_no LIKE ANY(%s) AND service_code = 'electricity'"
            " ORDER BY account_no, period",
            (like,),
        ),
        event_totals=totals,
    )


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _month(day: date) -> str:
    return day.strftime("%Y-%m")


def _once(findings: Findings, what: str, keys: list[Any], expected: set[Any] | None = None) -> int:
    """Every key exactly once (and, given `expected`, exactly those keys). Returns the number of keys."""
    counts = Counter(keys)
    twice = {k: n for k, n in counts.items() if n > 1}
    findings.check(not twice, f"{what}: applied more than once: {sorted(twice.items())[:10]}")
    findings.counts["duplicates"] = findings.counts.get("duplicates", 0) + sum(n - 1 for n in twice.values())
    if expected is not None:
        missing = expected - counts.keys()
        extra = counts.keys() - expected
        findings.counts["losses"] = findings.counts.get("losses", 0) + len(missing)
        findings.check(not missing, f"{what}: {len(missing)} missing (lost), e.g. {sorted(missing)[:5]}")
        findings.check(not extra, f"{what}: {len(extra)} unexpected, e.g. {sorted(extra)[:5]}")
    return len(keys)


def audit_stores(campaign: Campaign, stores: Stores, findings: Findings, *, rejected: set[str]) -> None:
    """`rejected`: event ids of valid messages a service refused by rule (expected nowhere else)."""
    twin_prefix, chaos_prefix = campaign.prefixes()
    worlds: list[tuple[str, SimLedger]] = [
        (twin_prefix, campaign.twin_ledger),
        (chaos_prefix, campaign.chaos_ledger),
    ]
    current = str(Month.of(almaty_today()))
    closed = sorted(campaign.twin_ledger.periods_closed | campaign.chaos_ledger.periods_closed)

    payments_by_account: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in stores.payments:
        payments_by_account[row[0]].append(row)
    periods_by_account: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in stores.periods:
        periods_by_account[row[0]].append(row)
    readings_by_account: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in stores.readings:
        readings_by_account[row[0]].append(row)
    charges_by_period: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    charge_total: dict[str, Decimal] = {}
    actual_charges: Counter[str] = Counter()
    for no, charge_id, period, estimated, total, reading_id in stores.charges:
        charges_by_period[(no, period)] += _money(total)
        charge_total[charge_id] = _money(total)
        if not estimated and reading_id:
            actual_charges[reading_id] += 1
    # The calculator's own corrections: estimates reversed by an actual reading, and estimates adjusted
    # to facts that arrived late (both are EstimateReversed events; the ledger posts each as a correction).
    calculator_corrections = [p for t, p in stores.calculator_events if t == "EstimateReversed"]
    reversal_by_period: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for p in calculator_corrections:
        reversal_by_period[(p["account_no"], p["period"])] += _money(p["amount"])

    expected_payment_ids: set[str] = set()
    expected_reversed_ids: set[str] = set()
    expected_accounts: set[str] = set()
    expected_readings: set[tuple[str, date]] = set()
    expected_bills: set[tuple[str, str]] = set()
    expected_corrections = 0
    history_totals: dict[str, list[Decimal]] = {}  # by household index: per copy, accrued + corrections
    affected: set[str] = set()  # households with a reading refused by rule (their ratings differ then)

    for prefix, sim in worlds:
        for no, a in sorted(sim.accounts.items()):
            if not no.startswith(prefix) or a.opened_on is None:
                continue
            expected_accounts.add(no)
            cancelled = sim.cancelled[no]
            live = a.live_payments(cancelled)
            expected_payment_ids |= set(a.payments)
            expected_reversed_ids |= {p for p in cancelled if p in a.payments}
            expected_corrections += len(a.corrections)
            # payments, exactly
            want = sorted((p.payment_id, p.paid_on, _money(p.amount), p.bank) for p in live)
            rows = payments_by_account.get(no, [])
            got = sorted((r[1], r[2], _money(r[3]), r[4]) for r in rows if not r[5])
            findings.check(got == want, f"{no} payments: ledger {_diff(got, want)}")
            got_reversed = sorted(r[1] for r in rows if r[5])
            want_reversed = sorted(p for p in cancelled if p in a.payments)
            findings.check(
                got_reversed == want_reversed, f"{no} reversed payments: {got_reversed} != {want_reversed}"
            )
            # months
            periods = periods_by_account.get(no, [])
            if not periods:
                findings.problems.append(f"{no}: the ledger has no months")
                continue
            paid = {p[1]: _money(p[5]) for p in periods if _money(p[5]) != ZERO}
            want_paid = {m: _money(v) for m, v in sim.paid_by_month(no).items() if _money(v) != ZERO}
            findings.check(paid == want_paid, f"{no} paid by month: ledger {_diff(paid, want_paid)}")
            findings.check(
                _money(periods[0][2]) == _money(a.opening_balance),
                f"{no} opening balance {periods[0][2]} != {a.opening_balance}",
            )
            sim_corr = sim.corrections_by_period(no)
            previous_closing: Decimal | None = None
            for _, period, opening, accrued, corrections, paid_, closing in periods:
                o, ac, co, pa, cl = (_money(x) for x in (opening, accrued, corrections, paid_, closing))
                findings.check(cl == o + ac + co - pa, f"{no} {period}: closing {cl} != {o}+{ac}+{co}-{pa}")
                findings.check(previous_closing is None or o == previous_closing,
                               f"{no} {period}: opens with {o}, the month before closed with {previous_closing}")  # fmt: skip
                previous_closing = cl
                findings.check(ac == charges_by_period[(no, period)],
                               f"{no} {period}: accrued {ac} != the calculator's charges {charges_by_period[(no, period)]}")  # fmt: skip
                want_co = _money(sim_corr.get(period, ZERO)) + reversal_by_period[(no, period)]
                findings.check(
                    co == want_co, f"{no} {period}: corrections {co} != back-office + reversals {want_co}"
                )
            index = no[len(prefix) :]
            history_totals.setdefault(index, []).append(
                sum((_money(p[3]) + _money(p[4]) for p in periods if p[1] < current), ZERO)
            )
            # readings
            kept = {ev: r for ev, r in a.readings.items() if ev not in rejected}
            if len(kept) != len(a.readings):
                affected.add(no[len(prefix) :])
            want_readings = sorted((d, _money(v)) for d, v in kept.values())
            expected_readings |= {(no, d) for d, _ in kept.values()}
            got_readings = sorted(
                (r[2], _money(r[3])) for r in readings_by_account.get(no, []) if r[4] == "grid"
            )
            findings.check(
                got_readings == want_readings,
                f"{no} readings: calculator {_diff(got_readings, want_readings)}",
            )
            for r in readings_by_account.get(no, []):
                findings.check(
                    actual_charges[r[1]] == 1, f"{no} reading {r[2]}: {actual_charges[r[1]]} actual charges"
                )
            # bills: every closed month the account was open in (on or before its last day)
            for period in closed:
                if a.opened_on <= Month.parse(period).last:
                    expected_bills.add((no, period))

    # the twin and the chaotic copy agree on what was charged over the history months
    for index, totals in sorted(history_totals.items()):
        if len(totals) == 2 and index not in affected:
            findings.check(totals[0] == totals[1],
                           f"household {index}: history accrued + corrections, twin {totals[0]} != chaotic {totals[1]}")  # fmt: skip

    # --- nothing applied twice, nothing lost (event stores) ---------------------------------------------
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event_type, payload in stores.ledger_events:
        by_type[event_type].append(payload)
    findings.counts["ledger.PaymentReceived"] = _once(
        findings, "ledger PaymentReceived per payment id",
        [p["payment_id"] for p in by_type["PaymentReceived"]], expected_payment_ids)  # fmt: skip
    findings.counts["ledger.PaymentReversed"] = _once(
        findings, "ledger PaymentReversed per payment id",
        [p["payment_id"] for p in by_type["PaymentReversed"]], expected_reversed_ids)  # fmt: skip
    findings.counts["ledger.AccrualPosted"] = _once(
        findings, "ledger AccrualPosted per charge id",
        [p["charge_id"] for p in by_type["AccrualPosted"]], set(charge_total))  # fmt: skip
    findings.counts["ledger.OpeningBalanceSet"] = _once(
        findings, "ledger OpeningBalanceSet per account",
        [p["account_no"] for p in by_type["OpeningBalanceSet"]], expected_accounts)  # fmt: skip
    corrections = by_type["CorrectionPosted"]
    findings.counts["ledger.CorrectionPosted"] = _once(
        findings, "ledger CorrectionPosted per correction id",
        [p.get("correction_id") for p in corrections])  # fmt: skip
    findings.check(
        len(corrections) == expected_corrections + len(calculator_corrections),
        f"ledger CorrectionPosted: {len(corrections)} != {expected_corrections} back-office corrections"
        f" + {len(calculator_corrections)} of the calculator's",
    )
    findings.counts["calculator.EstimateReversed"] = _once(
        findings,
        "calculator EstimateReversed per correction id",
        [p["correction_id"] for p in calculator_corrections],
    )
    for event_type, payload in stores.accounts_events:
        by_type["accounts." + event_type].append(payload)
    findings.counts["accounts.AccountOpened"] = _once(
        findings, "accounts AccountOpened per account",
        [p["account_no"] for p in by_type["accounts.AccountOpened"]], expected_accounts)  # fmt: skip
    for event_type, payload in stores.calculator_events:
        by_type["calculator." + event_type].append(payload)
    findings.counts["calculator.ReadingSubmitted"] = _once(
        findings, "calculator ReadingSubmitted per account and date",
        [(p["account_no"], date.fromisoformat(p["reading_date"])) for p in by_type["calculator.ReadingSubmitted"]
         if p.get("source") == "grid"], expected_readings)  # fmt: skip
    findings.counts["calculator.ChargeCalculated"] = _once(
        findings, "calculator ChargeCalculated per charge id",
        [p["charge_id"] for p in by_type["calculator.ChargeCalculated"]], set(charge_total))  # fmt: skip
    findings.counts["calculator.PeriodBilled"] = _once(
        findings, "calculator PeriodBilled per account and month",
        [(p["account_no"], p["period"]) for p in by_type["calculator.PeriodBilled"]], expected_bills)  # fmt: skip
    findings.counts["receipts.ReceiptIssued"] = _once(
        findings, "receipts ReceiptIssued per account and month",
        [(p["account_no"], p["period"]) for t, _, p in stores.receipt_events if t == "ReceiptIssued"],
        expected_bills)  # fmt: skip
    findings.counts["receipts.bills"] = _once(
        findings,
        "receipts bills per account and month",
        [(r[0], r[1]) for r in stores.receipts],
        expected_bills,
    )
    for service in ("identity", "accounts", "ledger", "calculator", "receipts"):
        total, distinct = stores.event_totals[service], stores.event_totals[f"{service}_distinct_ids"]
        findings.check(total == distinct, f"{service} event store: {total - distinct} duplicate event ids")
    findings.counts["event_stores"] = {s: stores.event_totals[s] for s in
                                       ("identity", "accounts", "ledger", "calculator", "receipts")}  # fmt: skip

    # --- bills ----------------------------------------------------------------------------------------
    billed = {(no, period): list(ids or []) for no, period, _, ids in stores.period_billing}
    sims = {prefix: sim for prefix, sim in worlds}
    up_to_date = 0
    ledger_rows = {(r[0], r[1]): r for r in stores.periods}
    for no, period, amount_due, overpayment, snapshot in stores.receipts:
        sim = sims[twin_prefix] if no.startswith(twin_prefix) else sims[chaos_prefix]
        front = snapshot["front"]
        money = front["money"]
        o, ac, co, pa, cl = (_money(money[k]) for k in
                             ("opening_balance", "accrued", "corrections", "paid", "closing_balance"))  # fmt: skip
        findings.check(cl == o + ac + co - pa, f"bill {no} {period}: closing {cl} != {o}+{ac}+{co}-{pa}")
        findings.check(_money(amount_due) == max(cl, ZERO) and _money(overpayment) == max(-cl, ZERO),
                       f"bill {no} {period}: amount due {amount_due} / overpayment {overpayment} for closing {cl}")  # fmt: skip
        on_bill = sorted(c["charge_id"] for c in front["charges"])
        findings.check(on_bill == sorted(billed.get((no, period), [])),
                       f"bill {no} {period}: charges {on_bill} != PeriodBilled {sorted(billed.get((no, period), []))}")  # fmt: skip
        for c in front["charges"]:
            findings.check(_money(c["total"]) == charge_total.get(c["charge_id"]),
                           f"bill {no} {period}: charge {c['charge_id']} {c['total']} != {charge_total.get(c['charge_id'])}")  # fmt: skip
        sent = {p.payment_id: p for p in sim.accounts[no].payments.values() if _month(p.paid_on) == period}
        for p in front["payments"]:
            s = sent.get(p.get("payment_id"))
            findings.check(s is not None and _money(p["amount"]) == _money(s.amount),
                           f"bill {no} {period}: payment {p} was not sent in that month")  # fmt: skip
        findings.check(sum((_money(p["amount"]) for p in front["payments"]), ZERO) == pa,
                       f"bill {no} {period}: paid {pa} != the payments listed")  # fmt: skip
        month_now = ledger_rows.get((no, period))
        if month_now is not None and (o, ac, co, pa, cl) == tuple(_money(x) for x in month_now[2:7]):
            up_to_date += 1
    findings.counts["bills_equal_to_the_ledgers_month_now"] = up_to_date
    findings.counts["bills_frozen_before_a_later_fact"] = len(stores.receipts) - up_to_date

    # receipts' own copy of the balances is the ledger's
    ledger_copy = sorted((r[0], r[1], *(_money(x) for x in r[2:7])) for r in stores.periods)
    receipts_copy = sorted((r[0], r[1], *(_money(x) for x in r[2:7])) for r in stores.service_periods)
    findings.check(
        ledger_copy == receipts_copy,
        f"receipts' balances != the ledger's: {_diff(receipts_copy, ledger_copy)}",
    )

    findings.counts["twin_households_compared"] = sum(
        1 for i, t in history_totals.items() if len(t) == 2 and i not in affected
    )
    findings.counts["accounts"] = len(expected_accounts)
    findings.counts["payments_sent_distinct"] = len(expected_payment_ids)
    findings.counts["payments_live"] = sum(1 for r in stores.payments if not r[5])
    findings.counts["payments_reversed"] = sum(1 for r in stores.payments if r[5])
    findings.counts["readings"] = len(expected_readings)
    findings.counts["charges"] = len(charge_total)
    findings.counts["estimated_charges"] = sum(1 for c in stores.charges if c[3])
    findings.counts["bills_expected"] = len(expected_bills)
    findings.counts["months_in_ledger"] = len(stores.periods)


def _diff(got: Any, want: Any) -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(set(got) | set(want))
        return ", ".join(
            f"{k}: {got.get(k)} vs sent {want.get(k)}" for k in keys if got.get(k) != want.get(k)
        )[:600]
    g, w = set(got), set(want)
    return f"missing {sorted(w - g)[:4]}, extra {sorted(g - w)[:4]}, counts {len(got)} vs sent {len(want)}"[
        :600
    ]


# --- dead letters -----------------------------------------------------------------------------------------
async def read_dead_letters(bootstrap: str) -> list[tuple[str, int, int, str, bytes, str]]:
    """Every record of every `.dlq` topic: (source topic, partition, offset, consumer, value, reason)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.endswith(".dlq")]
        await consumer._client.force_metadata_update()
        cluster = consumer._client.cluster
        tps = [TopicPartition(t, p) for t in topics for p in (cluster.partitions_for_topic(t) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[str, int, int, str, bytes, str]] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    headers = {k: v.decode() for k, v in (r.headers or ())}
                    out.append((
                        headers.get("dlq.source.topic", r.topic.removesuffix(".dlq")),
                        int(headers.get("dlq.source.partition", -1)),
                        int(headers.get("dlq.source.offset", -1)),
                        headers.get("dlq.consumer", "?"),
                        r.value or b"",
                        headers.get("dlq.reason", ""),
                    ))  # fmt: skip
        return out
    finally:
        await consumer.stop()


# Valid back-office messages that a service refuses by one of its own rules, the same way with or without
# faults. Each is a finding reported to the service's owner (see docs/reliability.md); FAULTS_STRICT=1
# makes them fail the run like any other discrepancy.
POLICY_REJECTIONS = ("implausible_consumption",)


@dataclass
class DeadLetters:
    letters: list[tuple[str, int, int, str, bytes, str]]
    rejected_valid: dict[str, str]  # event id of a valid message dead-lettered → reason


async def audit_dead_letters(
    bootstrap: str, sent: list[OutMessage], findings: Findings, *, strict: bool
) -> DeadLetters:
    letters = await read_dead_letters(bootstrap)
    malformed = {(m.topic, m.value) for m in sent if m.kind.startswith("malformed:")}
    valid_ids = {(m.topic, m.value): m.event_id for m in sent if not m.kind.startswith("malformed:")}
    found = {(topic, value) for topic, _, _, _, value, _ in letters}
    reasons = {(topic, value): reason for topic, _, _, _, value, reason in letters}
    missing = malformed - found
    extra = found - malformed
    findings.check(not missing, f"dead letters: {len(missing)} malformed messages not dead-lettered, e.g. "
                   + "; ".join(f"{t} {v[:160]!r}" for t, v in sorted(missing)[:3]))  # fmt: skip
    rejected_valid: dict[str, str] = {}
    unexpected: list[str] = []
    for key in sorted(extra):
        reason = reasons[key]
        event_id = valid_ids.get(key, "?")
        rejected_valid[event_id] = reason
        if strict or not any(rule in reason for rule in POLICY_REJECTIONS):
            unexpected.append(f"{key[0]} {key[1][:240]!r}: {reason[:200]}")
    findings.check(not unexpected, f"dead letters: {len(unexpected)} valid messages dead-lettered, e.g. "
                   + " | ".join(unexpected[:3]))  # fmt: skip
    policy = Counter(
        reason.split(":")[1].strip() if ":" in reason else reason for reason in rejected_valid.values()
    )
    if rejected_valid:
        findings.notes.append(
            f"{len(rejected_valid)} valid back-office messages refused by a service rule (dead-lettered):"
            f" {dict(policy)}"
        )
    sources = {(t, p, o) for t, p, o, *_ in letters}
    per_consumer = Counter(c for _, _, _, c, _, _ in letters)
    findings.counts["dead_letters"] = {
        "malformed_sent_distinct": len(malformed),
        "malformed_dead_lettered": len(malformed & found),
        "valid_dead_lettered": len(extra),
        "dlq_records": len(letters),
        "source_records": len(sources),
        "per_consumer": dict(sorted(per_consumer.items())),
    }
    return DeadLetters(letters, rejected_valid)


async def audit(campaign: Campaign, *, strict: bool = False) -> Findings:
    findings = Findings()
    env = campaign.instance.env()
    dead = await audit_dead_letters(env["KAFKA_BOOTSTRAP_SERVERS"], campaign.sent, findings, strict=strict)
    stores = await load_stores(env["PG_ADMIN_URL"], campaign.prefixes())
    audit_stores(campaign, stores, findings, rejected=set(dead.rejected_valid))
    return findings


# --- the public API, for a sample of accounts --------------------------------------------------------------
def _clear_proof(sim: SimLedger, no: str) -> bool:
    live = sim.accounts[no].live_payments(sim.cancelled[no])
    return bool(live) and (len(live) == 1 or live[-1].paid_on > live[-2].paid_on)


async def audit_api(campaign: Campaign, findings: Findings) -> None:
    """A user links a sample of each copy's accounts through the gateway; the API's payments, months and
    bills are the stores' (audited above), so the read path after the faults serves the same truth."""
    import secrets
    import uuid

    from backoffice_simulator.portal import PortalClient

    env = campaign.instance.env()
    admin = env["PG_ADMIN_URL"]
    stores = await load_stores(admin, campaign.prefixes())
    twin_prefix, chaos_prefix = campaign.prefixes()
    sample: list[tuple[str, SimLedger]] = []
    for prefix, sim in ((twin_prefix, campaign.twin_ledger), (chaos_prefix, campaign.chaos_ledger)):
        # Accounts whose proof is unambiguous: one latest payment (a tie on its date is the services' to
        # break by arrival, which chaos reorders).
        nos = [
            no for no, a in sorted(sim.accounts.items()) if no.startswith(prefix) and _clear_proof(sim, no)
        ]
        sample += [(no, sim) for no in nos[: campaign.size.api_sample]]
    today = almaty_today()
    checked = 0
    async with PortalClient(campaign.instance.gateway_url, mode="gateway",
                            services=campaign.instance.service_urls(), timeout_s=60) as client:  # fmt: skip
        email = f"faults-{uuid.uuid4().hex[:10]}@example.kz"
        password = secrets.token_urlsafe(16)
        r = await client.register(email, password, "Сбоев Тест Тестович")
        findings.check(r.status_code == 201, f"API register: {r.status_code} {r.text[:200]}")
        await client.login(email, password)
        for no, sim in sample:
            proof = sim.proof(no)
            assert proof is not None
            r = await client.link(no, proof["last_payment_month"], proof["last_payment_amount"])
            if r.status_code != 201:
                findings.problems.append(
                    f"API link {no} with the simulator's proof {proof}: {r.status_code} {r.text[:200]}"
                )
                continue
            a = sim.accounts[no]
            assert a.opened_on is not None
            got_payments = sorted(
                (p["payment_id"], p["date"], p["amount"], p["bank"])
                for p in await client.payments(no, a.opened_on.isoformat(), today.isoformat())
            )
            want_payments = sorted(
                (r_[1], r_[2].isoformat(), f"{_money(r_[3])}", r_[4])
                for r_ in stores.payments
                if r_[0] == no and not r_[5]
            )
            findings.check(
                got_payments == want_payments, f"API {no} payments: {_diff(got_payments, want_payments)}"
            )
            services = await client.services_of(no, str(Month.of(a.opened_on)), str(Month.of(today)))
            electricity: dict[str, Any] = next(
                (s for s in services if s["service_code"] == "electricity"), {"periods": []}
            )
            got_months = [
                (
                    p["period"],
                    *(
                        _money(p[k])
                        for k in ("opening_balance", "accrued", "corrections", "paid", "closing_balance")
                    ),
                )
                for p in electricity["periods"]
            ]
            want_months = [(r_[1], *(_money(x) for x in r_[2:7])) for r_ in stores.periods if r_[0] == no]
            # After the last month with entries, the API carries the balance up to the current month.
            last = want_months[-1] if want_months else None
            while (
                last is not None
                and len(want_months) < len(got_months)
                and got_months[len(want_months)][0] > last[0]
            ):
                last = (got_months[len(want_months)][0], last[5], ZERO, ZERO, ZERO, last[5])
                want_months.append(last)
            findings.check(got_months == want_months, f"API {no} months: {_diff(got_months, want_months)}")
            r = await client.request("GET", f"/accounts/{no}/receipts",
                                     params={"from": str(Month.of(a.opened_on)), "to": str(Month.of(today))})  # fmt: skip
            got_bills = sorted((b["period"], _money(b["amount_due"])) for b in r.json())
            want_bills = sorted((r_[1], _money(r_[2])) for r_ in stores.receipts if r_[0] == no)
            findings.check(got_bills == want_bills, f"API {no} bills: {_diff(got_bills, want_bills)}")
            checked += 1
    findings.counts["api_accounts_checked"] = checked
