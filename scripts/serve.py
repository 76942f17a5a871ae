"""ape run serve: serve a publish directory (instance protocols and documents) over HTTPS."""

from __future__ import annotations

from pathlib import Path

import click

from tracker.cli.boundary import command_boundary

# `ape run` executes every script to list its commands: only what the options need is imported
# here, the server (aiohttp, about 12 MB) when this command runs.
from tracker.publish.connections import DEFAULT_HOST, DEFAULT_PORT, ServerLimits
from tracker.publish.tls import DEFAULT_TLS_DIR

DEFAULTS = ServerLimits()
# The explorer as bin/setup builds it (web/build.mjs), served unless --explorer-dir names another.
BUILT_EXPLORER = Path(__file__).resolve().parent.parent / "web" / "dist"


@click.command()
@click.argument("directory", type=click.Path(path_type=Path), default=Path("protocol"))
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port to listen on (0: any free port).")
@click.option("--cert", type=click.Path(path_type=Path), default=None, help="PEM certificate (with --key).")
@click.option("--key", type=click.Path(path_type=Path), default=None, help="PEM private key of --cert.")
@click.option(
    "--tls-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_TLS_DIR,
    show_default=True,
    help="Where the self-signed certificate is generated on first use and kept.",
)
@click.option(
    "--explorer-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the browser explorer's static files, served under /explorer/ "
    "[default: this repository's web/dist, when bin/setup has built it].",
)
@click.option(
    "--head-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.head_timeout,
    show_default=True,
    help="Seconds from accepting a connection to its complete first request head, TLS handshake included.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.idle_timeout,
    show_default=True,
    help="Seconds a kept-alive connection may take from one response to the next complete request head.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_connections,
    show_default=True,
    help="Connections open at once, all clients together.",
)
@click.option(
    "--max-connections-per-client",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_connections_per_client,
    show_default=True,
    help="Connections open at once from one client address (an IPv6 /64).",
)
@click.option("--quiet", is_flag=True, help="Do not log requests.")
@command_boundary
def cli(
    directory,
    host,
    port,
    cert,
    key,
    tls_dir,
    explorer_dir,
    head_timeout,
    idle_timeout,
    max_connections,
    max_connections_per_client,
    quiet,
):
    """Serve DIRECTORY (default: ./protocol) over HTTPS until interrupted."""
    from tracker.publish.server import serve_in_thread

    limits = ServerLimits(
        head_timeout=head_timeout,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        max_connections_per_client=max_connections_per_client,
    )
    log = None if quiet else click.echo
    if explorer_dir is None and BUILT_EXPLORER.is_dir():
        explorer_dir = BUILT_EXPLORER
    server = serve_in_thread(directory, host, port, cert, key, tls_dir, log, explorer=explorer_dir, limits=limits)
    try:
        origin = "generated self-signed" if server.tls.generated else "certificate"
        click.echo(f"serving {server.root} at {server.origin}")
        if server.explorer is not None:
            click.echo(f"explorer: {server.explorer} at {server.url('explorer/')}")
        click.echo(f"limits: {server.limits.describe()}")
        click.echo(f"{origin}: {server.tls.cert_path}")
        click.echo(f"SHA-256 fingerprint: {server.fingerprint}")
        click.echo(f"register it with: ape run deploy --cert {server.tls.cert_path}")
        server.wait()
    finally:
        server.stop()
