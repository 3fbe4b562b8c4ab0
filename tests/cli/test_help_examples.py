"""Every option's help gives an example (docs/cli.md: "every option, with its default and an
example, is in `tinyface COMMAND --help`"), and every example is an invocation click accepts:
its commands exist, its options are theirs, their values are accepted, and it shows the option
it stands under, given to the command that owns it.

The examples are parsed, never run: no TensorFlow, no board, no dataset.
"""

import shlex

import click
import pytest
from click.core import ParameterSource

from tinyface.cli.main import cli

SHELL_WORDS = {"&", "&&", "|", "||", ";", "#"}  # what ends the tinyface part of a shell line


def _commands(cmd: click.Command = cli, path: tuple[str, ...] = ("tinyface",)):
    """(command path, command) for the whole tree: groups, their subcommands and so on."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(None):
            yield from _commands(cmd.get_command(None, name), (*path, name))


def _options() -> list[tuple[tuple[str, ...], click.Option]]:
    """Every option of every command, --help aside (click adds it, with its own text)."""
    return [(path, p) for path, cmd in _commands() for p in cmd.params if isinstance(p, click.Option)]


OPTIONS = _options()
IDS = [f"{' '.join(path)} {'/'.join(option.opts + option.secondary_opts)}" for path, option in OPTIONS]


def _example_args(path: tuple[str, ...], option: click.Option) -> list[str]:
    """The arguments after `tinyface` of the option's example: a whole line (`tinyface ...`, cut
    where the shell takes over) or a fragment (`--x 1`), which goes to the option's command."""
    words = shlex.split(option.help.split("Example: ", 1)[1])
    for i, word in enumerate(words):
        if word in SHELL_WORDS:
            words = words[:i]
            break
    if words[0] == "tinyface":
        return words[1:]
    return [*path[1:], *words]


def _parse(args: list[str]) -> dict[tuple[str, ...], set[str]]:
    """Parse `tinyface ARGS` one command at a time, the way click would, without running any
    command: {command path: names of the options the line gives it}.

    Raises:
        click.UsageError: an unknown command or option, an option without its value, an extra
            argument, or a value the option's type refuses (a click.Path's file need not exist).
    """
    given: dict[tuple[str, ...], set[str]] = {}
    cmd, path, parent = cli, ("tinyface",), None
    while True:
        # the parser alone (a context that is not resilient) names unknown options ...
        plain = click.Context(cmd, info_name=path[-1], parent=parent, **cmd.context_settings)
        _, rest, _ = cmd.make_parser(plain).parse_args(args=list(args))
        # ... and the resilient context types the values without asking for the required ones
        ctx = cmd.make_context(path[-1], list(args), parent=parent, resilient_parsing=True)
        here = {p.name for p in cmd.params if ctx.get_parameter_source(p.name) is ParameterSource.COMMANDLINE}
        refused = [p.opts[-1] for p in cmd.params
                   if p.name in here and p.expose_value and ctx.params.get(p.name) is None
                   and not isinstance(p.type, click.Path)]
        if refused:
            raise click.UsageError(f"`{' '.join(path)}` refuses the value of {', '.join(refused)}")
        given[path] = here
        if not isinstance(cmd, click.Group):
            if rest:
                raise click.UsageError(f"`{' '.join(path)}` takes no argument {rest[0]!r}")
            return given
        if not rest:
            return given
        name, sub, args = cmd.resolve_command(ctx, rest)
        if sub is None:
            raise click.UsageError(f"`{' '.join(path)}` has no command {rest[0]!r}")
        cmd, path, parent = sub, (*path, name), ctx


@pytest.mark.parametrize("path, option", OPTIONS, ids=IDS)
def test_every_option_has_an_example(path, option):
    assert "Example: " in (option.help or ""), (
        f"`{' '.join(path)} --help`: {'/'.join(option.opts)} has no example (\"Example: ...\" in its help)")


@pytest.mark.parametrize("path, option", OPTIONS, ids=IDS)
def test_every_example_is_a_real_invocation(path, option):
    if "Example: " not in (option.help or ""):
        pytest.skip("no example (test_every_option_has_an_example fails)")
    args = _example_args(path, option)
    line = shlex.join(["tinyface", *args])
    try:
        given = _parse(args)
    except click.UsageError as exc:
        pytest.fail(f"`{' '.join(path)} {option.opts[-1]}`: its example `{line}` is not valid: {exc.format_message()}")
    assert option.name in given.get(path, set()), (
        f"`{' '.join(path)} {option.opts[-1]}`: its example `{line}` does not give {option.opts[-1]} "
        f"to `{' '.join(path)}`")


@pytest.mark.parametrize("args, problem", [
    (["bogus"], "has no command"),
    (["data", "nope"], "has no command"),
    (["build", "--nope"], "No such option"),
    (["evaluate", "--runtime", "tfx"], "refuses the value of --runtime"),
    (["emulate", "--drop-reply", "0"], "refuses the value of --drop-reply"),
    (["boards", "esp32", "esp32s3"], "takes no argument"),
])
def test_a_wrong_example_is_caught(args, problem):
    """The check above can fail: each kind of wrong line is refused."""
    with pytest.raises(click.UsageError, match=problem):
        _parse(args)


def test_a_fragment_goes_to_the_command_that_owns_the_option():
    assert _parse(["--config", "lab.toml", "gallery", "list", "--port", "auto"]) == {
        ("tinyface",): {"config_path"}, ("tinyface", "gallery"): set(), ("tinyface", "gallery", "list"): {"port"}}
