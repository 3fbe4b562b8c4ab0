"""Options and helpers shared by the command modules."""

from __future__ import annotations

import math

import click


def not_empty(ctx, param, value):
    """A click callback: an option given as "" is refused (exit 2), not read as its default. A script's
    `--data "$DIR"` with DIR unset used to evaluate the whole default dataset, `flash --model "$M"`
    to flash the default model, and `--out ""` to write no report, all with exit 0."""
    if value == "":
        raise click.BadParameter("it is empty (give a value, or leave the option out for its default)",
                                 ctx=ctx, param=param)
    return value


def known_board(ctx, param, value):
    """A click callback for a board named on the command line (--board, `boards NAME`): a name no
    board file has (in --boards-dir's folder or the shipped ones), or a board file (``.toml``) that is
    not there, is a bad option value (exit 2), as an unknown --preset is; the board a settings file
    names (firmware.board) stays a bad setting (exit 3), and so does a board file that is invalid."""
    if value is None or ctx.resilient_parsing:
        return value
    from tinyface.boards import find_board_file, unknown_board

    if find_board_file(value) is None:
        hint = "'NAME'" if isinstance(param, click.Argument) else None  # click's would be '[NAME]'
        raise click.BadParameter(unknown_board(value).one_line(), ctx=ctx, param=param, param_hint=hint)
    return value


def board_option(help: str):
    """--board, of every command that names a board (checked by known_board)."""
    return click.option("--board", default=None, callback=known_board, help=help)


def skipped_lines(skipped: list[dict], shown: int, prefix: str = "") -> list[str]:
    """The files a command left out (``{"path", "reason"}`` each, as --json gives them), a line each
    as `data stats` names them, the first ``shown`` of them; then how many more."""
    lines = [f"  {prefix}{item['path']}: {item['reason']}" for item in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"  ... and {len(skipped) - shown:,} more (use --json for all)")
    return lines


def input_path(**kwargs) -> click.Path:
    """click.Path for a file or folder the command reads (--model), without click's readability check:
    a path that exists but cannot be read is then the command's to refuse, with the code its docs
    give a missing or a corrupt one (a model: ModelError, exit 6), not click's "is not readable" (exit 2)."""
    return click.Path(readable=False, **kwargs)


class CommandsGroup(click.Group):
    """A group of commands (`data`, `gallery`) whose options are its commands': one given before the
    command (`tinyface gallery --port P`) was "No such option '--port'"; it names the commands
    that take it, and where it goes."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            takers = [name for name in self.list_commands(ctx)
                      if any(exc.option_name in p.opts for p in self.get_command(ctx, name).params)]
            if not takers:
                raise
            which = (f"`{ctx.command_path} {takers[0]}`: give the command first" if len(takers) == 1 else
                     f"the commands {', '.join(takers[:-1])} and {takers[-1]}: give one first")
            raise click.UsageError(f"{exc.option_name} is an option of {which} "
                                   f"(`{ctx.command_path} {takers[0]} {exc.option_name} ...`)", ctx=ctx) from None


def photo_paths(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    """A PHOTOS argument (`enroll`, `identify`): each path given, a folder standing for the photos in
    it (the image files directly in it, by name: not its sub-folders, nor hidden files), and each
    photo once, where a folder and a path in it, or a path given twice, name it twice.

    Raises:
        click.BadParameter: a folder that holds no photo, or cannot be listed (exit 2).
    """
    import os

    from tinyface.data.dataset import IMAGE_EXTENSIONS, photos_in

    photos, seen = [], set()
    for given in value:
        if os.path.isdir(given):
            try:
                found = [os.path.join(given, p.name) for p in photos_in(given)]
            except OSError as exc:
                raise click.BadParameter(f"cannot list the folder {given}: {exc.strerror or exc}",
                                         ctx=ctx, param=param) from None
            if not found:
                raise click.BadParameter(f"the folder {given} holds no photos ({', '.join(IMAGE_EXTENSIONS)} files; "
                                         "its sub-folders are not read)", ctx=ctx, param=param)
        else:
            found = [given]
        for path in found:
            if (key := os.path.realpath(path)) not in seen:
                seen.add(key)
                photos.append(path)
    return tuple(photos)


class _NumberRange:
    """What IntRange and FloatRange lack: NaN, which every comparison lets through, is refused."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:  # NaN
            self.fail(f"{value!r} is not a number in the range {self._describe_range()}.", param, ctx)
        return number


class _IntRange(_NumberRange, click.IntRange):
    pass


class _FloatRange(_NumberRange, click.FloatRange):
    pass


def range_type(interval, integer: bool = False) -> click.ParamType:
    """The click type of an option whose valid values are ``interval`` (a tinyface.config.Interval):
    a value outside it (NaN included) is the option's usage error (exit 2, naming the option), and
    --help shows the range."""
    kind = _IntRange if integer else _FloatRange
    low, high = (None if math.isinf(x) else x for x in (interval.low, interval.high))  # "x>0", not "0<x<inf"
    return kind(low, high, min_open=not interval.low_included, max_open=not interval.high_included)


def setting_type(key: str) -> click.ParamType:
    """The click type of an option that sets the setting ``key`` ("bench.images" for `bench --images`):
    its number type and range from the setting's one definition (tinyface.config.OPTION_SETTING_RANGES),
    so that the option refuses, in its own name and with exit 2, what the setting refuses (exit 3 for
    --set or tinyface.toml), and --help shows the range."""
    from tinyface import config

    section, name = key.split(".")
    default = getattr(getattr(config.Settings(), section), name)
    return range_type(config.OPTION_SETTING_RANGES[key], integer=isinstance(default, int))


def ask_first(option: str, verb: str, what: str, ask: bool = True) -> bool:
    """Whether to ``verb`` ``what`` (`data cache --clear`, `gallery delete --all`, without --yes): the
    answer to a question on the terminal; ``ask`` False: yes without one (nothing would be lost).

    Raises:
        click.UsageError: stdin is not a terminal, so nobody can be asked: add --yes.
    """
    import sys

    if not sys.stdin.isatty():
        raise click.UsageError(f"{option} would {verb} {what}; add --yes to do it without a question")
    return not ask or click.confirm(f"{verb} {what}?", err=True)


def json_option(example: str):
    """--json, with an ``example``: a whole invocation of the command that uses it."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print results as JSON on stdout. Example: {example}")


def set_option(example: str):
    """--set, with an ``example`` of a setting the command reads (docs/config.md lists them all)."""
    return click.option("--set", "set_items", multiple=True, metavar="SECTION.KEY=VALUE",
                        help=f"Override one setting (repeatable; docs/config.md lists them). Example: --set {example}")


def port_options(f):
    """--port, --board, --baud, --timeout, --retries: how `bench`, `enroll`, `gallery list|delete` and
    `identify` reach a board, defined once. --port is read by the port rule every command with a port
    shares, `flash` too (tinyface.device.ports.resolve_port: 'auto' is the one board connected);
    --timeout and --retries set the bench.* settings, which all of them read."""
    options = [
        click.option("--port", required=True, callback=not_empty,
                     help="Serial port (e.g. /dev/ttyUSB0, or the path `tinyface emulate` printed), or 'auto' to "
                          "find the board by its USB VID:PID. Example: --port /dev/ttyUSB0"),
        board_option("Board data (boards/*.toml): baud, USB ids [default: firmware.board]. "
                     "Example: --board esp32s3"),
        click.option("--baud", type=click.IntRange(min=1), default=None,
                     help="Serial speed [default: the board's]. Example: --baud 115200"),
        click.option("--timeout", "timeout_s", type=setting_type("bench.timeout_s"), default=None,
                     help="Seconds to wait for a reply before resending [default: bench.timeout_s]. "
                          "Example: --timeout 5"),
        click.option("--retries", type=setting_type("bench.retries"), default=None,
                     help="Resends per request [default: bench.retries]. Example: --retries 5"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def first_answer(port: str):
    """Around a command's first request to a board: a spinner while its answer is awaited (a board
    that does not answer takes ``bench.timeout_s`` x (``bench.retries`` + 1) seconds, 20 by default,
    to be given up on); where stderr is no terminal, a line every 10 s. The commands of
    :func:`port_options` use it, so none waits in silence."""
    from tinyface.console import status

    return status(f"waiting for {port} to answer")


def plot_option(help_text: str):
    """--plot FILE.png (`profile`, `bench`): a name not ending in .png is a usage error (exit 2)
    while the command line is parsed, before any work; whether the path can be written is the
    command's tinyface.boards.plots.check_plot_path (exit 14)."""

    def check_name(ctx, param, value):
        from tinyface.boards.plots import plot_name_problem

        not_empty(ctx, param, value)
        if value is not None and (problem := plot_name_problem(value)):
            raise click.BadParameter(problem, ctx=ctx, param=param)
        return value

    return click.option("--plot", "plot_path", type=click.Path(), default=None, callback=check_name, help=help_text)


def load_settings(ctx: click.Context, overrides: dict | None = None, set_items: tuple[str, ...] = (),
                  base: dict | None = None, quick: dict | None = None):
    """Effective settings: defaults < ``base`` (a preset) < tinyface.toml (or --config) < ``quick``
    (`build --quick`) < --set < explicit options."""
    from tinyface import config

    merged: dict = {}
    for source in (config.parse_set_option(set_items), overrides or {}):
        for section, values in source.items():
            merged.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    obj = ctx.find_root().obj or {}
    # the settings file the root command read (none read there under --help: read it now)
    file = obj.get("settings_file") or obj.get("config_path")
    return config.load(file, merged, base=base, quick=quick)


def isa_board(flag: str, board: str | None, set_items: tuple[str, ...]) -> str:
    """The board for the instruction-set emulator (``emulate --isa``, ``profile --measured``):
    the one named on the command line (--board, else --set firmware.board), whose chip must be the
    ESP32-C3; else the shipped esp32c3, whatever tinyface.toml's firmware.board says.

    Raises:
        click.UsageError: the board named is not one it runs (``flag`` names the option).
        ConfigError: the board named is unknown.
    """
    from tinyface import config
    from tinyface.boards import load_board
    from tinyface.device.isa import ISA_BOARD, board_refusal

    named = board or config.parse_set_option(set_items).get("firmware", {}).get("board")
    why = board_refusal(load_board(str(named))) if named else None  # an unknown board: its own error
    if why:
        raise click.UsageError(f"{flag}: {why}")
    return str(named) if named else ISA_BOARD


def settings_for_model(ctx: click.Context, settings, model_path: str | None, board: str,
                       overrides: dict | None = None, set_items: tuple[str, ...] = ()):
    """For a command that runs a model on a board (flash, emulate, profile): the model
    (resolve_model) and ``settings`` (from load_settings with the same ``overrides`` and
    ``set_items``) redone with the model's own kernel set (model.json ``kernels``, the set it was
    sized for) as the default under tinyface.toml, --set and --kernels, the way a preset is.

    Returns:
        (settings, the resolved model path).
    """
    from tinyface.model.bundle import META_FILE, read_meta, resolve_model

    path = resolve_model(model_path, board)
    meta_path = path / META_FILE if path.is_dir() else path.with_name(META_FILE)
    if meta_path.is_file():
        meta, _ = read_meta(meta_path)
        if meta.kernels:
            settings = load_settings(ctx, overrides, set_items, base={"firmware": {"kernels": meta.kernels}})
    return settings, path
