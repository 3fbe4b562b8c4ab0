"""`tinyface boards` (placeholder until its issue lands)."""

import click

from tinyface.cli.common import not_implemented


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def boards(args):
    """Not implemented yet: exits 2."""
    not_implemented("boards", "issue: boards and firmware")
