"""ape run serve: serve a publish directory (instance protocols and documents) over HTTPS."""

from __future__ import annotations

from pathlib import Path

import click

from tracker.cli.boundary import command_boundary
from tracker.publish.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TLS_DIR, serve_in_thread


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
@click.option("--quiet", is_flag=True, help="Do not log requests.")
@command_boundary
def cli(directory, host, port, cert, key, tls_dir, quiet):
    """Serve DIRECTORY (default: ./protocol) over HTTPS until interrupted."""
    server = serve_in_thread(directory, host, port, cert, key, tls_dir, log=None if quiet else click.echo)
    try:
        origin = "generated self-signed" if server.tls.generated else "certificate"
        click.echo(f"serving {server.root} at {server.origin}")
        click.echo(f"{origin}: {server.tls.cert_path}")
        click.echo(f"SHA-256 fingerprint: {server.fingerprint}")
        click.echo(f"register it with: ape run deploy --cert {server.tls.cert_path}")
        server.wait()
    finally:
        server.stop()
