import click
from tracker.cli import network_option, connected
from tracker.errors import command_boundary
@click.command()
@network_option()
@command_boundary
def cli(network_choice):
    with connected(network_choice) as provider:
        click.echo(f"{provider.network.ecosystem.name}:{provider.network.name}:{provider.name} {provider.chain_id}")
