"""`tinyface build`: the whole pipeline (the model-pipeline issue fills in the stages)."""

from __future__ import annotations

import click

from tinyface.cli.common import json_option, load_settings, not_implemented, set_option


@click.command()
@click.option("--data", "data_dir", type=click.Path(), default=None, help="Dataset folder (default: $TINYFACE_DATA or ~/.cache/tinyface/datasets/lfw).")
@click.option("--print-config", is_flag=True, help="Print the effective settings as TOML and exit.")
@set_option
@json_option
@click.pass_context
def build(ctx, data_dir, print_config, set_items, as_json):
    """Train, distill, prune and int8-quantize a face model; evaluate every stage; write a report."""
    settings = load_settings(ctx, {"data": {"dir": data_dir}}, set_items)
    if print_config:
        if as_json:
            from tinyface.console import print_json

            print_json(settings.to_dict())
        else:
            click.echo(settings.to_toml(), nl=False)
        return
    from tinyface.data.dataset import require_dataset

    require_dataset(settings.data.data_path())
    not_implemented("build", "issue: model pipeline")
