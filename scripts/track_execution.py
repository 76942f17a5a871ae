"""ape run track_execution: register Step Functions executions on InstanceTracker and publish them."""

from __future__ import annotations

import json
import re
import signal
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from tracker.cli.boundary import command_boundary
from tracker.cli.options import (
    account_option,
    base_url_option,
    connected,
    contract_option,
    json_option,
    load_account,
    network_option,
)
from tracker.errors import ChainError, ConfigurationError
from tracker.publish.targets import DEFAULT_BASE_URL, DEFAULT_TARGET
from tracker.tracking.config import DEFAULT_MAX_GAS_PER_TX, DEFAULT_MAX_STATES_PER_CALL

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def since_millis(value: str | None) -> int | None:
    """`--since` as epoch milliseconds: a duration back from now (`30m`, `2h`, `7d`) or an ISO time."""
    if not value:
        return None
    match = DURATION.match(value.strip())
    if match:
        moment = datetime.now(timezone.utc) - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"--since {value!r}: expected a duration like 30m, 2h, 7d or an ISO time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def status_table(summary) -> object:
    from rich.table import Table

    table = Table(title=f"track_execution ({summary.mode})", show_header=False)
    for label, value in (
        ("executions seen", summary.executions),
        ("children seen", summary.child_executions),
        ("states registered", summary.states_registered),
        ("instances registered / final", f"{summary.instances_registered} / {summary.instances_terminated}"),
        ("attempts ended (redrivable)", summary.attempts_ended),
        ("executions skipped", len(summary.skipped)),
        ("pending executions", summary.pending_executions),
        ("held log events", summary.held_events),
        ("transactions", summary.transactions),
        ("gas used", f"{summary.gas_used:,}"),
        ("polls", summary.polls),
    ):
        table.add_row(label, str(value))
    return table


@click.command()
@click.argument("state_machine_arns", nargs=-1, metavar="[STATE_MACHINE_ARN]...")
@click.option("--execution", "execution_arn", default=None, metavar="ARN", help="Track only this execution.")
@click.option("--since", default=None, help="Only executions started since (30m, 2h, 7d or an ISO time).")
@click.option(
    "--source",
    "source_name",
    type=click.Choice(["history", "logs"]),
    default="history",
    show_default=True,
    help="history: Standard workflows' history API; logs: CloudWatch Logs (Express workflows).",
)
@click.option("--log-group", default=None, help="Log group for --source logs (default: the state machine's).")
@click.option("--region", default=None, help="AWS region (default: AWS_REGION / the profile's).")
@click.option("--follow", is_flag=True, help="Keep polling until interrupted (Ctrl-C ends after the current batch).")
@click.option(
    "--poll-interval", type=float, default=5.0, show_default=True, help="Seconds between polls with --follow."
)
@click.option("--max-polls", type=click.IntRange(min=1), default=None, help="Stop --follow after this many polls.")
@click.option(
    "--max-instances-per-tx",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Direct mode: instances packed into one transaction.",
)
@click.option(
    "--max-states-per-call",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_STATES_PER_CALL,
    show_default=True,
    help="Direct mode: states per contract call; a longer trace is split over several calls.",
)
@click.option(
    "--max-gas-per-tx",
    type=click.IntRange(min=200_000),
    default=DEFAULT_MAX_GAS_PER_TX,
    show_default=True,
    help="Gas budget of one transaction, as the node estimates it (a little less where that fills blocks); more work goes into further transactions.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Transactions pending at once (consecutive nonces): throughput bounded by block gas, not by confirmations.",
)
@click.option(
    "--confirmations",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Blocks deep a transaction must be before its states count as registered (a reorg sends them again).",
)
@click.option(
    "--replace-after",
    "replace_after_s",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds a transaction may stay pending before it is replaced with higher fees (same nonce).",
)
@click.option(
    "--owner",
    default=None,
    metavar="ADDRESS",
    help="Register under this account (default: the sending account, which must then be its operator).",
)
@click.option("--anchor", is_flag=True, help="Anchor each poll's new states under one Merkle root.")
@click.option("--include-data", is_flag=True, help="Put raw state input/output into state documents.")
@click.option(
    "--publish",
    "publish_target",
    default=DEFAULT_TARGET,
    show_default=True,
    help="Publish target: a directory or s3://bucket/prefix.",
)
@base_url_option(DEFAULT_BASE_URL)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".tracker"),
    show_default=True,
    help="Where checkpoints are kept.",
)
@network_option()
@account_option()
@contract_option()
@json_option()
@command_boundary
def cli(
    state_machine_arns,
    execution_arn,
    since,
    source_name,
    log_group,
    region,
    follow,
    poll_interval,
    max_polls,
    max_instances_per_tx,
    max_states_per_call,
    max_gas_per_tx,
    max_in_flight,
    confirmations,
    replace_after_s,
    owner,
    anchor,
    include_data,
    publish_target,
    base_url,
    state_dir,
    network_choice,
    account_alias,
    contract_address,
    as_json,
):
    """Register Step Functions executions (models, instances, states) on InstanceTracker and publish them."""
    from tracker.aws.executions import Selection
    from tracker.aws.history import HistorySource
    from tracker.aws.logs import LogsSource
    from tracker.aws.session import aws_session
    from tracker.chain.contract import TrackerContract
    from tracker.publish.targets import open_target
    from tracker.tracking.config import TrackConfig
    from tracker.tracking.engine import track

    selection = Selection(tuple(state_machine_arns), execution_arn, since_millis(since))
    session = aws_session(region)
    source = (
        HistorySource(session, selection) if source_name == "history" else LogsSource(session, selection, log_group)
    )
    publisher = open_target(publish_target, base_url, session)
    config = TrackConfig(
        mode="anchor" if anchor else "direct",
        include_data=include_data,
        follow=follow,
        poll_interval=poll_interval,
        max_polls=max_polls,
        max_instances_per_tx=max_instances_per_tx,
        max_states_per_call=max_states_per_call,
        max_gas_per_tx=max_gas_per_tx,
        max_in_flight=max_in_flight,
        confirmations=confirmations,
        replace_after_s=replace_after_s,
        owner=owner,
        state_dir=state_dir,
    )
    stop = threading.Event()

    def interrupt(_signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if not as_json:
            click.echo("Stopping after the current batch (Ctrl-C again to abort).", err=True)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with connected(network_choice) as provider:
            sender = load_account(account_alias, provider)
            contract = TrackerContract.at(contract_address, sender)
            if as_json:
                summary = track(config, source, contract, publisher, stop=stop)
            else:
                from rich.live import Live

                with Live(status_table(_empty(config.mode)), refresh_per_second=4, transient=True) as live:
                    summary = track(
                        config,
                        source,
                        contract,
                        publisher,
                        on_progress=lambda s: live.update(status_table(s)),
                        stop=stop,
                    )
    finally:
        signal.signal(signal.SIGINT, previous)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
    else:
        from rich.console import Console

        Console().print(status_table(summary))
    for warning in summary.warnings:
        click.echo(f"Warning: {warning}", err=True)
    for skipped in summary.skipped:
        click.echo(f"skipped {skipped.execution_arn}: {skipped.reason}", err=True)
    if summary.skipped:
        raise ChainError(
            f"{len(summary.skipped)} of {summary.executions} executions could not be registered "
            "(listed above); every other one was"
        )
    if as_json:
        return
    children = f" and {summary.child_executions} child executions" if summary.child_executions else ""
    click.echo(
        f"{summary.states_registered} states of {summary.executions} executions{children} registered in "
        f"{summary.transactions} transactions ({summary.gas_used:,} gas); "
        f"{len(set(summary.protocols_written))} protocols written to {publisher.describe()}"
    )


def _empty(mode: str):
    from tracker.tracking.config import TrackSummary

    return TrackSummary(mode=mode)
