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
from tracker.verify.download import HostPolicy
from tracker.verify.follow import follow_instance
from tracker.verify.locate import locate_protocol, owner_address, tracker_for
from tracker.verify.report import VerificationReport, VerifyOptions
from tracker.verify.verifier import verify_protocol

EXIT_FAILED = 1
EXIT_INCOMPLETE = 2
MARKS = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]not checked[/]"}


class Seconds(click.FloatRange):
    """A positive, finite number of seconds (FloatRange lets NaN through: it compares false)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


SECONDS = Seconds(min=0, min_open=True, max=86_400)
DEFAULTS = VerifyOptions()


def _limit(flag: str, default: int, text: str, maximum: int | None = None):
    """A positive whole-number limit (sizes, counts) with its default shown."""
    return click.option(flag, default=default, show_default=True, type=click.IntRange(min=1, max=maximum), help=text)


@click.command()
@click.argument("url", required=False)
@click.option(
    "--instance",
    "instance_id",
    metavar="ID",
    help="Find the protocol of this instance document id through the chain and ENS (with --owner).",
)
@click.option("--owner", metavar="ADDRESS|NAME", help="With --instance: the instance's owner, an address or ENS name.")
@network_option()
@contract_option("A private InstanceTracker deployment (default: the canonical address, the same on every chain).")
@json_option()
@click.option("--timeout", default=DEFAULTS.timeout, show_default=True, type=SECONDS, help="Seconds per download.")
@click.option(
    "--total-timeout",
    default=DEFAULTS.total_timeout,
    show_default=True,
    type=SECONDS,
    help="Seconds for all downloads of the run together.",
)
@_limit("--max-bytes", DEFAULTS.max_document_bytes, "Size limit per document.")
@_limit(
    "--max-content-bytes",
    DEFAULTS.max_content_bytes,
    "Size limit per document whose content is read (instance, state and end documents).",
)
@_limit("--max-protocol-bytes", DEFAULTS.max_protocol_bytes, "Size limit of the protocol.")
@_limit("--max-entries", DEFAULTS.max_entries, "Most states a protocol may list.")
@_limit("--concurrency", DEFAULTS.concurrency, "Parallel downloads.", maximum=256)
@click.option(
    "--allow-private-hosts",
    is_flag=True,
    help="Also fetch documents from loopback, private and other non-public addresses.",
)
@click.option(
    "--aws",
    "compare_aws",
    is_flag=True,
    help="Also compare each state's recorded code with what Lambda and ECS say today (your read-only AWS credentials).",
)
@click.option("--region", default=None, help="With --aws: the AWS region (default: AWS_REGION / the profile's).")
@click.option("--follow", is_flag=True, help="Then verify each new state as it is registered, until interrupted.")
@click.option(
    "--poll-interval",
    "--poll",
    "poll_seconds",
    default=2.0,
    show_default=True,
    type=SECONDS,
    help="Seconds between polls with --follow.",
)
@click.option(
    "--max-states", type=click.IntRange(min=1), default=None, help="With --follow: stop after this many new states."
)
@click.option("--follow-seconds", type=SECONDS, default=None, help="With --follow: stop after this many seconds.")
@command_boundary
def cli(
    url,
    instance_id,
    owner,
    network_choice,
    contract_address,
    as_json,
    timeout,
    total_timeout,
    max_bytes,
    max_content_bytes,
    max_protocol_bytes,
    max_entries,
    concurrency,
    allow_private_hosts,
    compare_aws,
    region,
    follow,
    poll_seconds,
    max_states,
    follow_seconds,
):
    """Verify the instance protocol at URL (or of --instance ID --owner OWNER) against the chain,
    ENS and its server.

    Five checks: 1. the protocol came over TLS, within the limits; 2. each listed state's document
    hashes to its id and says what its position says, and it is registered for the owner's
    instance at that position by the owner or an operator approved then, and the listed trace
    matches the contract's count, head and every pinned attempt end; 3. the model and instance
    documents hash to their ids and agree, the instance was registered with them, and every
    attempt end is listed with an end document that agrees with it; 4. the owner's ENS name
    resolves back to it and its url record is the protocol's origin; 5. the server's certificate
    has the fingerprint the owner registered and signed.

    The contract is the canonical InstanceTracker (or --contract for a private deployment), never
    one the protocol names. Exit status: 0 when every check and state passed, 1 when one failed,
    2 when none failed but some could not be checked (no chain or contract, no ENS on the network,
    documents in the published prototype's format, anchored states not yet pinned).
    """
    if bool(url) == bool(instance_id):
        raise ConfigurationError("give either a protocol URL or --instance ID")
    if instance_id and not owner:
        raise ConfigurationError("--instance needs --owner: records are kept per owner")
    if owner and not instance_id:
        raise ConfigurationError("--owner goes with --instance (a protocol names its owner itself)")
    if url and not url.lower().startswith("https://"):
        raise ConfigurationError(f"the protocol URL must be https://, got {url!r}")
    options = VerifyOptions(
        timeout=timeout,
        total_timeout=total_timeout,
        max_document_bytes=max_bytes,
        max_content_bytes=max_content_bytes,
        max_protocol_bytes=max_protocol_bytes,
        max_entries=max_entries,
        concurrency=concurrency,
        allow_private_hosts=allow_private_hosts,
    )
    console = Console(stderr=as_json)
    aws_session = None
    if compare_aws:
        from tracker.aws.session import aws_session as open_session

        aws_session = open_session(region)
    elif region:
        raise ConfigurationError("--region goes with --aws")
    connecting = True
    try:
        with connected(network_choice, persistent=False):  # reads only
            connecting = False
            tracker, no_contract = tracker_for(contract_address)
            given_by_user = True
            if instance_id:
                if tracker is None:
                    raise ConfigurationError(f"cannot locate a protocol without a contract: {no_contract}")
                policy = HostPolicy(options.allow_private_hosts)
                owner_hex = owner_address(owner, options.timeout, policy)
                url = locate_protocol(tracker, instance_id, owner_hex, options.timeout, policy)
                given_by_user = False
            if follow and tracker is None:
                raise ConfigurationError(f"cannot follow without a contract: {no_contract}")
            report = _verify(
                url,
                tracker,
                options,
                console,
                as_json,
                url_given_by_user=given_by_user,
                no_contract=no_contract,
                aws_session=aws_session,
            )
            _print(report, console, as_json)
            if follow:
                _follow(
                    report,
                    url,
                    tracker,
                    options,
                    console,
                    as_json,
                    poll_seconds,
                    max_states,
                    follow_seconds,
                    given_by_user,
                )
    except ChainError as error:
        if not connecting or instance_id or follow:
            raise
        console.print(f"[yellow]no chain: {error}; on-chain checks are not made[/]")
        report = _verify(url, None, options, console, as_json, connected=False, aws_session=aws_session)
        _print(report, console, as_json)
    if not report.passed:
        sys.exit(EXIT_FAILED if report.verdict == "failed" else EXIT_INCOMPLETE)


def _verify(url, tracker, options, console: Console, as_json: bool, **how) -> VerificationReport:
    if as_json:
        return verify_protocol(url, tracker, options, **how)
    with console.status(f"verifying {url}") as status:
        return verify_protocol(url, tracker, options, progress=lambda message: status.update(message), **how)


def _about(report: VerificationReport) -> list[str]:
    lines = []
    if report.contract is not None:
        source = (
            "the canonical address"
            if report.contract_is_canonical
            else "given with --contract, not the canonical address"
        )
        lines.append(f"contract 0x{report.contract} ({source}) on chain id {report.chain_id}")
    if report.owner is not None:
        lines.append(f"owner 0x{report.owner}, execution {report.execution_id or 'unknown'}")
    if report.status_text is not None:
        lines.append(f"instance: {report.mode or ''} {report.status_text}".replace("  ", " "))
    if report.parent is not None:
        parent = report.parent
        run = f", Map Run {parent.map_run_arn}" if parent.map_run_arn else ""
        lines.append(
            f"started by instance {parent.instance_id} (state {parent.state_name!r}, event {parent.event_id}{run}) "
            f"of execution {parent.execution_arn}, as its instance document says; verify that instance to check "
            "the link from its side"
        )
    return lines


def _print(report: VerificationReport, console: Console, as_json: bool) -> None:
    if as_json:
        for chunk in report.json_chunks():
            click.echo(chunk, nl=False)
        return
    for line in _about(report):
        console.print(line, soft_wrap=True, highlight=False)
    checks = Table(title=f"Verification of {report.url}")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("reason", overflow="fold")
    for check in report.checks:
        checks.add_row(check.title, MARKS[check.ok], check.reason)
    console.print(checks)
    if report.states:
        states = Table(title="States")
        for column in ("position", "state", "result", "reason"):
            states.add_column(column, overflow="fold" if column == "reason" else "ellipsis")
        for state in report.states:
            states.add_row(str(state.position), state.state_id[:16], MARKS[state.ok], state.reason)
        console.print(states)
        ran = [state for state in report.states if state.ran]
        if ran:
            tasks = Table(title="What each task ran (from its task document)")
            tasks.add_column("position")
            tasks.add_column("state: what ran", overflow="fold")
            for state in ran:
                tasks.add_row(str(state.position), state.ran)
            console.print(tasks)
    if report.code_today:
        today = Table(title="The recorded code against AWS today (--aws)")
        for column in ("position", "state", "result", "reason"):
            today.add_column(column, overflow="fold" if column == "reason" else "ellipsis")
        for drift in report.code_today:
            today.add_row(str(drift.position), drift.state_name, MARKS[drift.ok], drift.reason)
        console.print(today)
    if report.attempts:
        attempts = Table(title="Attempt ends")
        for column in ("attempt", "end document", "result", "reason"):
            attempts.add_column(column, overflow="fold" if column == "reason" else "ellipsis")
        for attempt in report.attempts:
            attempts.add_row(str(attempt.attempt), (attempt.end_id or "")[:16], MARKS[attempt.ok], attempt.reason)
        console.print(attempts)
    colour = {"passed": "green", "failed": "red", "incomplete": "yellow"}[report.verdict]
    status = f", instance {report.status_text}" if report.status_text else ""
    console.print(f"[bold {colour}]verdict: {report.verdict.upper()}[/]{status} ({report.seconds:.2f} s)")


def _follow(
    report, url, tracker, options, console: Console, as_json: bool, poll_seconds, max_states, follow_seconds, given
) -> None:
    if report.owner is None or report.execution_id is None:
        raise ConfigurationError("cannot follow: the protocol's owner or execution is unknown")
    deadline = time.monotonic() + follow_seconds if follow_seconds is not None else None
    if not as_json:
        console.print(f"following execution {report.execution_id[:16]}… of 0x{report.owner} (Ctrl-C to stop)")
    for state in follow_instance(
        url,
        tracker,
        report.owner,
        report.execution_id,
        options,
        poll_seconds=poll_seconds,
        max_states=max_states,
        until=(lambda: time.monotonic() > deadline) if deadline is not None else None,
        known_seqs=[row.seq for row in report.states],
        url_given_by_user=given,
    ):
        report.states.append(state)
        if as_json:
            click.echo(json.dumps(state.to_json()))
        else:
            console.print(f"seq {state.seq} {state.state_id[:16]} {MARKS[state.ok]} {state.reason}")
