"""`backoffice-sim`: the billing back-office, simulated, against the real Kafka of the local stack.

    backoffice-sim seed --accounts 50 --months 12 --seed 7 [--start 2025-01] [--demo] [--ledger-out l.json]
    backoffice-sim stream --rate 20 --duration 60
    backoffice-sim chaos --duplicates 0.3 --disorder 0.5 --malformed 0.05   (a seed with chaos)
    backoffice-sim dlq list [--topic backoffice.payments.v1]
    backoffice-sim dlq replay --topic backoffice.payments.v1 (--all | --fix-with fixes.json)
    backoffice-sim asyncapi > asyncapi.json
    backoffice-sim demo

Kafka: --bootstrap, else $KAFKA_BOOTSTRAP_SERVERS, else .local/stack.env, else 127.0.0.1:9092.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from backoffice_simulator import asyncapi as asyncapi_doc
from backoffice_simulator import dlq as dlq_tools
from backoffice_simulator.chaos import Chaos, ChaosConfig
from backoffice_simulator.demo import DEMO_EMAIL, run_demo, summary_lines
from backoffice_simulator.generator import Month, Scenario, World, almaty_today, generate
from backoffice_simulator.kafka import bootstrap_servers, ensure_topics, publish
from backoffice_simulator.ledger import SimLedger
from backoffice_simulator.portal import GATEWAY_URL
from backoffice_simulator.stream import run_stream
from backoffice_simulator.wire import OutMessage

app = typer.Typer(
    help="The billing back-office, simulated, against the real Kafka of the local stack.",
    epilog=(
        "Kafka: --bootstrap, else $KAFKA_BOOTSTRAP_SERVERS, else .local/stack.env, else 127.0.0.1:9092."
        " See libs/backoffice_simulator/README.md."
    ),
    no_args_is_help=True,
    add_completion=False,
)
dlq_app = typer.Typer(
    help="Dead letters: list them with their reasons, replay them after a fix.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")
err = Console(stderr=True)
out = Console()

Bootstrap = Annotated[str | None, typer.Option(help="Kafka bootstrap servers")]
Accounts = Annotated[int, typer.Option("--accounts", min=0, help="households to seed")]
Months = Annotated[int, typer.Option("--months", min=1, max=240, help="months of history")]
SeedOpt = Annotated[int, typer.Option("--seed", help="the random seed: same seed, same messages")]
Start = Annotated[str | None, typer.Option("--start", help="first month YYYY-MM (default: ends last month)")]
Demo = Annotated[bool, typer.Option("--demo", help="add the demo customer's accounts (24 months)")]
Prefix = Annotated[str | None, typer.Option("--account-prefix", help="digits the account numbers start with")]
Missing = Annotated[
    float, typer.Option("--missing-rate", min=0, max=1, help="share of months without a reading")
]
NoReference = Annotated[bool, typer.Option("--no-reference", help="skip district offices and tariffs")]
LedgerOut = Annotated[Path | None, typer.Option("--ledger-out", help="write the simulator's ledger (JSON)")]
Out = Annotated[
    Path | None, typer.Option("--out", help="write the messages as JSON lines instead of publishing")
]
Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bar")]
Dup = Annotated[float, typer.Option(min=0, max=1, help="probability to re-send a message (and a payment)")]
Dis = Annotated[float, typer.Option(min=0, max=1, help="probability to hold a message back (out of order)")]
Mal = Annotated[float, typer.Option(min=0, max=1, help="probability to add a malformed copy of a message")]
Window = Annotated[int, typer.Option(min=1, help="how far a message may be held back (messages)")]
Scope = Annotated[str, typer.Option(help="cross-topic: keep order per topic+key (Kafka's); any: shuffle all")]
ChaosSeed = Annotated[int, typer.Option(help="the chaos's own seed")]
ClosingsDelay = Annotated[
    float,
    typer.Option(
        min=0,
        help="send the period closings last, this many seconds after the rest (so that the services"
        " know the accounts when the billing runs start)",
    ),
]


def _scenario(
    accounts: int,
    months: int,
    seed: int,
    start: str | None,
    demo: bool,
    prefix: str | None,
    missing: float,
    no_reference: bool,
) -> Scenario:
    scenario = Scenario(
        seed=seed,
        accounts=accounts,
        months=months,
        start=Month.parse(start) if start else None,
        demo=demo,
        account_prefix=prefix,
        missing_rate=missing,
        reference_data=not no_reference,
    )
    last = scenario.window[-1]
    if scenario.demo:
        last = max(last, scenario.demo_window[-1])
    if last >= Month.of(almaty_today()):
        raise typer.BadParameter(
            f"the window ends in {last}, which has not ended yet: the calculator refuses to close it",
            param_hint="--start/--months",
        )
    return scenario


def _emit(
    world: World,
    messages: list[OutMessage],
    *,
    bootstrap: str | None,
    out_path: Path | None,
    ledger_out: Path | None,
    quiet: bool,
    chaos: Chaos | None = None,
    closings_delay: float = 0.0,
) -> dict[str, Any]:
    ledger = SimLedger().record_all(messages)
    if out_path is not None:
        with out_path.open("w", encoding="utf-8") as handle:
            for m in messages:
                handle.write(
                    json.dumps(
                        {"topic": m.topic, "key": m.key, "value": m.value.decode()}, ensure_ascii=False
                    )
                    + "\n"
                )
        sent = len(messages)
    else:
        server = bootstrap_servers(bootstrap)

        async def go() -> int:
            await ensure_topics(server)
            if closings_delay <= 0:
                return await publish(server, messages, description="publishing", show_progress=not quiet)
            history = [m for m in messages if m.event_type != "PeriodClosed"]
            closings = [m for m in messages if m.event_type == "PeriodClosed"]
            sent = await publish(server, history, description="publishing", show_progress=not quiet)
            await asyncio.sleep(closings_delay)
            return sent + await publish(server, closings, description="closing", show_progress=not quiet)

        sent = asyncio.run(go())
    summary: dict[str, Any] = {
        "sent": sent,
        "accounts": len(world.households),
        "periods": [str(world.periods[0]), str(world.periods[-1])],
        "per_topic": {},
    }
    for m in messages:
        summary["per_topic"][m.topic] = summary["per_topic"].get(m.topic, 0) + 1
    if chaos is not None:
        summary["chaos"] = chaos.report.to_json()
    if ledger_out is not None:
        document = ledger.to_json()
        document["scenario"] = {
            "seed": world.scenario.seed,
            "accounts": world.scenario.accounts,
            "months": [str(m) for m in world.periods],
            "demo": world.demo_accounts,
        }
        if chaos is not None:
            document["chaos"] = chaos.report.to_json()
        ledger_out.parent.mkdir(parents=True, exist_ok=True)
        ledger_out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    err.print_json(data=summary)
    return summary


@app.command()
def seed(
    accounts: Accounts = 20,
    months: Months = 12,
    seed: SeedOpt = 1,
    start: Start = None,
    demo: Demo = False,
    account_prefix: Prefix = None,
    missing_rate: Missing = 0.07,
    no_reference: NoReference = False,
    ledger_out: LedgerOut = None,
    out_file: Out = None,
    bootstrap: Bootstrap = None,
    quiet: Quiet = False,
    chaos_duplicates: Dup = 0.0,
    chaos_disorder: Dis = 0.0,
    chaos_malformed: Mal = 0.0,
    chaos_window: Window = 40,
    chaos_scope: Scope = "cross-topic",
    chaos_seed: ChaosSeed = 0,
    closings_delay: ClosingsDelay = 0.0,
) -> None:
    """N households with M months of coherent history, published in a realistic order."""
    scenario = _scenario(accounts, months, seed, start, demo, account_prefix, missing_rate, no_reference)
    world = generate(scenario)
    chaos = Chaos(
        ChaosConfig(chaos_duplicates, chaos_disorder, chaos_malformed, chaos_window, chaos_scope, chaos_seed)
    )
    messages = chaos.apply(world.messages)
    _emit(
        world,
        messages,
        bootstrap=bootstrap,
        out_path=out_file,
        ledger_out=ledger_out,
        quiet=quiet,
        chaos=chaos if chaos.config.active else None,
        closings_delay=closings_delay,
    )


@app.command("chaos")
def chaos_command(
    duplicates: Dup = 0.2,
    disorder: Dis = 0.3,
    malformed: Mal = 0.05,
    window: Window = 40,
    scope: Scope = "cross-topic",
    chaos_seed: ChaosSeed = 0,
    accounts: Accounts = 20,
    months: Months = 12,
    seed: SeedOpt = 1,
    start: Start = None,
    account_prefix: Prefix = None,
    missing_rate: Missing = 0.07,
    no_reference: NoReference = False,
    ledger_out: LedgerOut = None,
    out_file: Out = None,
    bootstrap: Bootstrap = None,
    quiet: Quiet = False,
) -> None:
    """A seed with duplicates, disorder and malformed messages (counted per topic and kind)."""
    scenario = _scenario(accounts, months, seed, start, False, account_prefix, missing_rate, no_reference)
    world = generate(scenario)
    chaos = Chaos(ChaosConfig(duplicates, disorder, malformed, window, scope, chaos_seed))
    _emit(
        world,
        chaos.apply(world.messages),
        bootstrap=bootstrap,
        out_path=out_file,
        ledger_out=ledger_out,
        quiet=quiet,
        chaos=chaos,
    )


@app.command()
def stream(
    rate: Annotated[float, typer.Option(min=0.1, help="messages per second")] = 10.0,
    duration: Annotated[float, typer.Option(min=0.1, help="seconds to run")] = 60.0,
    run_id: Annotated[str, typer.Option(help="payments of another run id are other payments")] = "live",
    accounts: Accounts = 20,
    months: Months = 12,
    seed: SeedOpt = 1,
    start: Start = None,
    account_prefix: Prefix = None,
    bootstrap: Bootstrap = None,
    chaos_duplicates: Dup = 0.0,
    chaos_disorder: Dis = 0.0,
    chaos_malformed: Mal = 0.0,
    chaos_seed: ChaosSeed = 0,
) -> None:
    """A steady live feed (today's readings and payments) for the households of a seed."""
    scenario = _scenario(accounts, months, seed, start, False, account_prefix, 0.07, False)
    world = generate(scenario)
    config = ChaosConfig(chaos_duplicates, chaos_disorder, chaos_malformed, 10, "cross-topic", chaos_seed)
    chaos = Chaos(config) if config.active else None
    with out.status("streaming…") as status:
        stats = asyncio.run(
            run_stream(
                world,
                bootstrap=bootstrap_servers(bootstrap),
                rate=rate,
                duration_s=duration,
                chaos=chaos,
                run_id=run_id,
                on_batch=lambda s: status.update(
                    f"streaming: {s.sent} sent ({s.readings} readings, {s.payments} payments)"
                ),
            )
        )
    summary: dict[str, Any] = {"sent": stats.sent, "readings": stats.readings, "payments": stats.payments}
    if chaos is not None:
        summary["chaos"] = chaos.report.to_json()
    err.print_json(data=summary)


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[
        str | None, typer.Option(help="a source topic (or its .dlq); default: every .dlq topic")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Dead letters with their reasons, one row per bad source message (several consumers: one row)."""
    server = bootstrap_servers(bootstrap)

    async def collect() -> list[dlq_tools.DeadLetterGroup]:
        topics = (
            [topic]
            if topic
            else [dlq_tools.source_topic(t) for t in await dlq_tools.dead_letter_topics(server)]
        )
        groups: list[dlq_tools.DeadLetterGroup] = []
        for t in topics:
            groups += await dlq_tools.list_dead_letters(server, t)
        return groups

    groups = asyncio.run(collect())
    if as_json:
        sys.stdout.write(json.dumps([g.to_json() for g in groups], ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=f"Dead letters ({len(groups)})", show_lines=False)
    for column in ("source", "event", "key", "reason", "consumers", "failed at", "replayed"):
        table.add_column(column, overflow="fold")
    for g in groups:
        table.add_row(
            f"{g.source_topic}:{g.coordinates}",
            g.event_type,
            (g.key or b"").decode("utf-8", "replace"),
            g.reason[:160],
            ", ".join(g.consumers),
            g.failed_at[:19],
            (g.replayed or {}).get("action", "") if g.replayed else "",
        )
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Option(help="the source topic (or its .dlq)")],
    fix_with: Annotated[
        Path | None, typer.Option("--fix-with", help="JSON file of fixes (see dlq.py)")
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="republish every dead letter not replayed yet")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would be replayed")] = False,
    force: Annotated[bool, typer.Option("--force", help="send even if it still fails the contracts")] = False,
    validate_as: Annotated[
        str | None, typer.Option(help="check fixes against this topic's contracts")
    ] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Republish dead letters to their source topic (after a fix); each is replayed once."""
    if fix_with is None and not replay_all:
        raise typer.BadParameter("choose --all or --fix-with FILE", param_hint="--all/--fix-with")
    fixes = dlq_tools.load_fixes(fix_with) if fix_with is not None else None
    outcomes = asyncio.run(
        dlq_tools.replay(
            bootstrap_servers(bootstrap),
            topic,
            fixes=fixes,
            replay_all=replay_all,
            dry_run=dry_run,
            force=force,
            validate_as=validate_as,
        )
    )
    table = Table(title=f"Replay of {dlq_tools.dlq_topic(topic)}")
    for column in ("source", "event", "action", "detail"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        table.add_row(o.group.coordinates, o.group.event_type, o.action, o.detail)
    out.print(table)
    if any(o.action in ("invalid", "unmatched") for o in outcomes):
        raise typer.Exit(code=2)


@app.command()
def asyncapi(
    output: Annotated[Path | None, typer.Option("--out", help="write to a file instead of stdout")] = None,
    server: Annotated[str, typer.Option(help="the broker named in `servers`")] = "127.0.0.1:9092",
) -> None:
    """The AsyncAPI 3.0 document of every topic, generated from the contracts."""
    text = asyncapi_doc.render(asyncapi_doc.build_document(server=server))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
def demo(
    gateway: Annotated[str, typer.Option(help="the gateway's base URL")] = GATEWAY_URL,
    mode: Annotated[str, typer.Option(help="auto | gateway | direct (the services' internal APIs)")] = "auto",
    no_seed: Annotated[bool, typer.Option("--no-seed", help="only register and link")] = False,
    email: Annotated[str, typer.Option(help="the demo customer's e-mail")] = DEMO_EMAIL,
    credentials_file: Annotated[
        Path | None, typer.Option(help="where its password is kept (default .local/demo-credentials.txt)")
    ] = None,
    background: Annotated[
        int | None, typer.Option(help="background households (default: 30, from the state)")
    ] = None,
    readings_wait: Annotated[
        float, typer.Option(help="seconds to wait for the calculator to show the readings before closing")
    ] = 300.0,
    settle_wait: Annotated[
        float, typer.Option(help="seconds to wait for every month to be accrued and billed")
    ] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    bootstrap: Bootstrap = None,
    quiet: Quiet = False,
) -> None:
    """Seed the demo data, register the demo customer, link two accounts, close the periods and wait
    until both show their history accrued and billed; print the login."""
    result = asyncio.run(
        run_demo(
            bootstrap=bootstrap_servers(bootstrap),
            gateway=gateway,
            mode=mode,
            seed=not no_seed,
            email=email,
            credentials_file=credentials_file,
            background=background,
            show_progress=not quiet,
            log=lambda line: err.print(line),
            readings_wait_s=readings_wait,
            settle_wait_s=settle_wait,
        )
    )
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        for line in summary_lines(result):
            out.print(line, highlight=False)
    if result.failures:
        raise typer.Exit(code=1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
