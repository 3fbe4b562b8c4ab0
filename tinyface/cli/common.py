"""Options and helpers shared by the command modules."""

from __future__ import annotations

import click

from tinyface.errors import NotImplementedYet

json_option = click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
set_option = click.option("--set", "set_items", multiple=True, metavar="SECTION.KEY=VALUE",
                          help="Override one setting, e.g. --set distill.epochs=5 (repeatable).")


def load_settings(ctx: click.Context, overrides: dict | None = None, set_items: tuple[str, ...] = (),
                  base: dict | None = None, quick: dict | None = None):
    """Effective settings: defaults < ``base`` (a preset) < tinyface.toml (or --config) < ``quick``
    (`build --quick`) < --set < explicit options."""
    from tinyface import config

    merged: dict = {}
    for source in (config.parse_set_option(set_items), overrides or {}):
        for section, values in source.items():
            merged.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    root = ctx.find_root()
    return config.load(root.obj.get("config_path") if root.obj else None, merged, base=base, quick=quick)


def not_implemented(command: str, issue: str) -> None:
    raise NotImplementedYet(f"`tinyface {command}` is not implemented yet ({issue})")
