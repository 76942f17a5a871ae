"""ape run verify: check a published instance protocol against the chain, ENS and its TLS certificate."""

from __future__ import annotations

import json
import sys
import time

import click
from rich.console import Console
from rich.table import Table

from tracker.cli.boundary import command_boundary
from tracker.cli.options import connected, contract_option, json_option, network_option
from tracker.errors import ChainError, ConfigurationError
from tracker.verify.follow import follow_instance
from tracker.verify.locate import locate_protocol, tracker_for
from tracker.verify.report import StateResult, VerificationReport, VerifyOptions
from tracker.verify.verifier import verify_protocol

EXIT_FAILED = 1
EXIT_INCOMPLETE = 2
MARKS = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]not checked[/]"}


@click.command()
@click.argument("url", required=False)
@click.option(
    "--instance",
    "instance_id",
    metavar="ID",
    help="Find the protocol through the chain: owner -> ENS name -> url record.",
)
@network_option()
@contract_option()
@json_option()
@click.option("--timeout", default=10.0, show_default=True, type=float, help="Seconds allowed per download.")
@click.option(
    "--max-bytes",
    default=VerifyOptions.max_document_bytes,
    show_default=True,
    type=int,
    help="Size limit per document.",
)
@click.option(
    "--concurrency", default=VerifyOptions.concurrency, show_default=True, type=int, help="Parallel downloads."
)
@click.option("--follow", is_flag=True, help="Then verify each new state as it is registered, until interrupted.")
@click.option(
    "--poll", "poll_seconds", default=2.0, show_default=True, type=float, help="Seconds between polls with --follow."
)
@click.option("--max-states", type=int, default=None, help="With --follow: stop after this many new states.")
@click.option("--follow-seconds", type=float, default=None, help="With --follow: stop after this many seconds.")
@command_boundary
def cli(
    url,
    instance_id,
    network_choice,
    contract_address,
    as_json,
    timeout,
    max_bytes,
    concurrency,
    follow,
    poll_seconds,
    max_states,
    follow_seconds,
):
    """Verify the instance protocol at URL (or of --instance ID) against the chain, ENS and its server.

    Five checks: 1. the protocol came over TLS; 2. each listed state's document hashes to its id
    and is registered for the instance at its position, and the listed states match the
    contract's count and head; 3. the model and instance documents hash to their ids and are
    registered, the instance as one of that model; 4. the owner's ENS name resolves back to it
    and its url record is the protocol's origin; 5. the server's certificate has the fingerprint
    the owner registered and signed.

    Exit status: 0 when every check and state passed, 1 when one failed, 2 when none failed but
    some could not be checked (no chain reachable, no ENS on the network).
    """
    if bool(url) == bool(instance_id):
        raise ConfigurationError("give either a protocol URL or --instance ID")
    if url and not url.lower().startswith("https://"):
        raise ConfigurationError(f"the protocol URL must be https://, got {url!r}")
    options = VerifyOptions(timeout=timeout, max_document_bytes=max_bytes, concurrency=concurrency)
    console = Console(stderr=as_json)
    connecting = True
    try:
        with connected(network_choice):
            connecting = False
            tracker = tracker_for(url, contract_address, options)
            if instance_id:
                url = locate_protocol(tracker, instance_id)
            report = _verify(url, tracker, options, console, as_json)
            _print(report, console, as_json)
            if follow:
                _follow(report, url, tracker, options, console, as_json, poll_seconds, max_states, follow_seconds)
    except ChainError as error:
        if not connecting or instance_id or follow:
            raise
        console.print(f"[yellow]no chain: {error}; on-chain checks are not made[/]")
        report = _verify(url, None, options, console, as_json)
        _print(report, console, as_json)
    if not report.passed:
        sys.exit(EXIT_FAILED if report.verdict == "failed" else EXIT_INCOMPLETE)


def _verify(url, tracker, options, console: Console, as_json: bool) -> VerificationReport:
    if as_json:
        return verify_protocol(url, tracker, options)
    with console.status(f"verifying {url}") as status:
        return verify_protocol(url, tracker, options, progress=lambda message: status.update(message))


def _print(report: VerificationReport, console: Console, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    checks = Table(title=f"Verification of {report.url}")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("reason", overflow="fold")
    for check in report.checks:
        checks.add_row(check.title, MARKS[check.ok], check.reason)
    console.print(checks)
    if report.states:
        states = Table(title="States")
        for column in ("position", "seq", "state", "result", "reason"):
            states.add_column(column, overflow="fold" if column == "reason" else "ellipsis")
        for state in report.states:
            _state_row(states, state)
        console.print(states)
    colour = {"passed": "green", "failed": "red", "incomplete": "yellow"}[report.verdict]
    console.print(f"[bold {colour}]verdict: {report.verdict.upper()}[/] ({report.seconds:.2f} s)")


def _state_row(table: Table, state: StateResult) -> None:
    table.add_row(str(state.position), str(state.seq), state.state_id[:16], MARKS[state.ok], state.reason)


def _follow(
    report, url, tracker, options, console: Console, as_json: bool, poll_seconds, max_states, follow_seconds
) -> None:
    if report.instance_id is None:
        raise ConfigurationError("cannot follow: the protocol could not be read")
    deadline = time.monotonic() + follow_seconds if follow_seconds is not None else None
    if not as_json:
        console.print(f"following instance {report.instance_id[:16]}… (Ctrl-C to stop)")
    for state in follow_instance(
        url,
        tracker,
        report.instance_id,
        options,
        poll_seconds=poll_seconds,
        max_states=max_states,
        until=(lambda: time.monotonic() > deadline) if deadline is not None else None,
        known_seqs=[row.seq for row in report.states],
    ):
        report.states.append(state)
        if as_json:
            click.echo(json.dumps(state.to_json()))
        else:
            console.print(f"seq {state.seq} {state.state_id[:16]} {MARKS[state.ok]} {state.reason}")
