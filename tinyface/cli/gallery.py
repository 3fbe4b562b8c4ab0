"""`tinyface enroll`, `tinyface gallery list|delete`, `tinyface identify`: the board's gallery.

The work is in :mod:`tinyface.device.gallery`; these commands parse options, open the port
the way `bench` does and print the results (or JSON with --json).
"""

from __future__ import annotations

import click

from tinyface.cli.common import (
    CommandsGroup,
    ask_first,
    first_answer,
    input_path,
    json_option,
    load_settings,
    not_empty,
    photo_paths,
    port_options,
    set_option,
)

model_option = click.option(
    "--model", "model_path", type=input_path(), default=None, callback=not_empty,
    help="The bundle the board runs (folder or model.tflite), for faces cut as its model.json says "
         "[default: the released model whose sha256 the board reports]. Example: --model build/esp32")
def skip_bad_option(example: str):
    return click.option(
        "--skip-bad", is_flag=True,
        help="Go on with the photos that pass the checks and report the others (default: refuse them all). "
             f"Example: {example}")


def _name(ctx, param, value):
    """--name: the text its bytes spell in UTF-8, whatever the locale (fsutil.os_text), by the board's rules."""
    if value is None:
        return value
    from tinyface.fsutil import os_text
    from tinyface.protocol.spec import check_name

    try:
        name = os_text(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}: give it in UTF-8") from None
    try:
        return check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _given_model(model_path):
    """The --model bundle, loaded (ModelError, exit 6, if it is not one), or None."""
    if model_path is None:
        return None
    from tinyface.model.bundle import load_bundle

    return load_bundle(model_path)


def _open(ctx, port, board, baud, timeout_s, retries, set_items=()):
    from tinyface.device.gallery import open_board

    settings = load_settings(ctx, {"bench": {"timeout_s": timeout_s, "retries": retries},
                                   "firmware": {"board": board}}, set_items)
    return open_board(port, settings.firmware.board, baud, settings.bench.timeout_s, settings.bench.retries), settings


@click.command()
@port_options
@click.option("--name", required=True, callback=_name,
              help="The person's name: UTF-8, 1 to 15 bytes (Zoë: 4 bytes). Example: --name Alice")
@click.argument("photos", nargs=-1, required=True, type=input_path(exists=True), callback=photo_paths)
@model_option
@skip_bad_option("tinyface enroll --port P --name Bob --skip-bad bob/*.jpg")
@json_option("tinyface enroll --port auto --name Bob --json bob.jpg")
@set_option("data.workers=1")
@click.pass_context
def enroll(ctx, port, board, baud, timeout_s, retries, name, photos, model_path, skip_bad, as_json, set_items):
    """Enroll a person on the board from one or more photos (a folder: the photos in it).

    The host finds and aligns each face (as for the model the board runs); the board embeds
    them and adds them to the person's centroid. Every photo is checked first: a face was
    found, it is not a duplicate (of another photo, or of the person's enrolled one), and it
    looks like the person's other photos and not more like someone else enrolled (a lone
    photo: not like anyone else enrolled, at the identification threshold). A refused photo
    stops the enrollment (nothing changes on the board) unless --skip-bad is given.

    \b
    Examples:
      tinyface enroll --port /dev/ttyUSB0 --name Alice photos/alice/*.jpg
      tinyface enroll --port /dev/ttyUSB0 --name Alice photos/alice      # the photos in the folder
      tinyface enroll --port auto --name Bob --skip-bad bob1.jpg bob2.jpg bob3.jpg
      tinyface enroll --port /dev/pts/3 --name Zoë zoe.jpg --json    # the port `tinyface emulate` printed
    """
    from tinyface.console import print_json, progress_bar, step
    from tinyface.device import gallery as api
    from tinyface.protocol.spec import check_name

    model = _given_model(model_path)  # a bad --model is one line before the port is opened
    opened, settings = _open(ctx, port, board, baud, timeout_s, retries, set_items)
    with opened as client:
        with first_answer(client.port):
            info, bundle = api.board_bundle(client, model)
        try:
            name = check_name(name, info.max_name_bytes)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--name'") from None
        with progress_bar("aligning faces", len(photos)) as advance:
            aligned = api.align_photos(photos, bundle, settings, progress=advance)
        result = api.enroll(client, info, bundle, name, aligned, skip_bad=skip_bad, steps=step)
    if as_json:
        print_json(result.to_dict())
        return
    from pathlib import Path

    for p in result.photos:
        if p.status == "refused":
            click.echo(f"skipped {Path(p.path).name}: {p.reason}", err=True)
    click.echo(f"enrolled {result.enrolled} photo{'s' * (result.enrolled != 1)} of {result.name} on {result.port}: "
               f"{result.samples} sample{'s' * (result.samples != 1)} in slot {result.slot}, "
               f"{result.count} of {_people(result.capacity)} enrolled")


@click.group(cls=CommandsGroup)
def gallery():
    """List or delete the people enrolled on a board.

    \b
    Examples:
      tinyface gallery list --port /dev/ttyUSB0
      tinyface gallery delete --port /dev/ttyUSB0 --name Alice
    """


@gallery.command("list")
@port_options
@json_option("tinyface gallery list --port auto --json")
@set_option("bench.retries=5")
@click.pass_context
def list_command(ctx, port, board, baud, timeout_s, retries, as_json, set_items):
    """The people enrolled on the board, with their slot and number of samples.

    \b
    Examples:
      tinyface gallery list --port /dev/ttyUSB0
      tinyface gallery list --port auto --json
    """
    from tinyface.console import print_json
    from tinyface.device import gallery as api

    opened, _ = _open(ctx, port, board, baud, timeout_s, retries, set_items)
    with opened as client, first_answer(client.port):
        result = api.list_gallery(client)
    if as_json:
        print_json(result)
        return
    click.echo(f"{result['count']} of {_people(result['capacity'])} enrolled on {result['port']}")
    for p in result["people"]:
        click.echo(f"  {p['slot']:>3}  {p['name']:<16} {p['samples']} sample{'s' * (p['samples'] != 1)}")


@gallery.command("delete")
@port_options
@click.option("--name", default=None, callback=_name, help="The person to remove. Example: --name Alice")
@click.option("--all", "everyone", is_flag=True,
              help="Remove everyone (instead of --name); asks first, in a terminal. "
                   "Example: tinyface gallery delete --port P --all")
@click.option("--yes", is_flag=True,
              help="With --all: remove everyone without a question (needed where none can be asked: a script, "
                   "a pipe). Example: tinyface gallery delete --port P --all --yes")
@json_option("tinyface gallery delete --port auto --all --yes --json")
@set_option("bench.retries=5")
@click.pass_context
def delete_command(ctx, port, board, baud, timeout_s, retries, name, everyone, yes, as_json, set_items):
    """Remove a person (or, with --all, everyone) from the board's gallery.

    --all asks before it removes anyone (the photos would be needed to enroll them again);
    where nobody can answer (stdin is not a terminal) it is refused unless --yes is given.

    \b
    Examples:
      tinyface gallery delete --port /dev/ttyUSB0 --name Alice
      tinyface gallery delete --port /dev/ttyUSB0 --all          # asks first
      tinyface gallery delete --port /dev/ttyUSB0 --all --yes --json
    """
    from tinyface.console import print_json
    from tinyface.device import gallery as api

    if (name is None) == (not everyone):
        raise click.UsageError("give --name NAME or --all (one of them)")
    opened, _ = _open(ctx, port, board, baud, timeout_s, retries, set_items)
    with opened as client:
        if everyone and not yes:
            with first_answer(client.port):
                listed = api.list_gallery(client)
            if not _confirm_everyone(listed):  # the question outside the spinner
                click.echo("nothing deleted", err=True)
                return
        with first_answer(client.port):  # after the list, at once
            result = api.delete(client, name)
    if as_json:
        print_json(result)
        return
    who = name if name else f"everyone ({_people(result['removed'])})"
    click.echo(f"removed {who} from {result['port']}; {_people(result['count'])} enrolled")


def _confirm_everyone(listed: dict) -> bool:
    """Whether to remove everyone ``listed`` (gallery list's result): the answer to a question in a
    terminal (none for an empty gallery), as `tinyface data cache --clear` asks.

    Raises:
        click.UsageError: stdin is not a terminal (nobody to ask), however many are enrolled: a
            script is told to add --yes the first time it runs, not the first time someone is enrolled.
    """
    names = [p["name"] for p in listed["people"]]
    shown = ": " + ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else ""
    what = f"everyone enrolled on {listed['port']} ({_people(listed['count'])}{shown})"
    return ask_first("--all", "remove", what, ask=bool(listed["count"]))


@click.command()
@port_options
@click.argument("photos", nargs=-1, required=True, type=input_path(exists=True), callback=photo_paths)
@model_option
@skip_bad_option("tinyface identify --port P --skip-bad door/*.jpg")
@json_option("tinyface identify --port auto --json door/*.jpg")
@set_option("data.workers=1")
@click.pass_context
def identify(ctx, port, board, baud, timeout_s, retries, photos, model_path, skip_bad, as_json, set_items):
    """Who is in each photo: the board's best match in its gallery, accepted at its threshold.

    The host finds and aligns each face (a folder: of each photo in it); the board embeds it and
    compares it with every enrolled person's centroid. A photo without a found face is refused (nothing is
    identified) unless --skip-bad is given.

    \b
    Examples:
      tinyface identify --port /dev/ttyUSB0 photo.jpg
      tinyface identify --port auto --json door/*.jpg
      tinyface identify --port auto door/         # every photo in the folder
    """
    from tinyface.console import print_json, progress_bar, step
    from tinyface.device import gallery as api

    model = _given_model(model_path)  # a bad --model is one line before the port is opened
    opened, settings = _open(ctx, port, board, baud, timeout_s, retries, set_items)
    with opened as client:
        with first_answer(client.port):
            info, bundle = api.board_bundle(client, model)
        api.check_someone_enrolled(client, info)  # before the photos are aligned, which takes seconds each
        with progress_bar("aligning faces", len(photos)) as advance:
            aligned = api.align_photos(photos, bundle, settings, progress=advance)
        results = api.identify(client, info, aligned, skip_bad=skip_bad, steps=step)
    refused = [p.to_dict() for p in aligned.photos if p.status == "refused"]
    if as_json:
        from dataclasses import asdict

        print_json({"port": client.port, "identify_threshold": float(info.identify_threshold),
                    "results": [asdict(r) for r in results], "refused": refused})
        return
    for p in refused:
        click.echo(f"skipped {p['path']}: {p['reason']}", err=True)
    for r in results:
        if r.accepted:
            click.echo(f"{r.path}: {r.name} (similarity {r.similarity:.3f} >= {r.identify_threshold:.3f})")
        else:
            click.echo(f"{r.path}: unknown (best {r.best or 'nobody'}, similarity {r.similarity:.3f} "
                       f"< {r.identify_threshold:.3f})")


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"
