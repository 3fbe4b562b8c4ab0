"""`tinyface data`: fetch a dataset, show its statistics, show and clear the cache."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tinyface.cli.common import (
    CommandsGroup,
    ask_first,
    input_path,
    json_option,
    load_settings,
    not_empty,
    range_type,
    set_option,
    skipped_lines,
)
from tinyface.config import DATASETS, Interval

if TYPE_CHECKING:
    from tinyface.data.fetch import FetchResult


@click.group(cls=CommandsGroup)
def data():
    """Fetch a dataset, show its statistics, or show and clear the cache.

    \b
    Examples:
      tinyface data fetch lfw
      tinyface data stats --data ~/photos/family
      tinyface data cache
    """


@data.command()
@click.argument("name", type=click.Choice(list(DATASETS)), metavar="NAME")
@click.option("--url", default=None, callback=not_empty,
              help="Base URL of the files (default: $TINYFACE_<NAME>_URL, e.g. $TINYFACE_FAIRFACE_URL, else "
                   "the dataset's public home). Example: tinyface data fetch lfw --url file:///mnt/mirror/lfw")
# readable=False: a --dest that cannot be read is fetch's to refuse as one that cannot be written
# (OutputError, exit 14), not click's "is not readable" (exit 2)
@click.option("--dest", type=click.Path(readable=False), default=None, callback=not_empty,
              help="Where to unpack (default: lfw: data.dir if tinyface.toml sets it, else the default dataset "
                   "folder; the others: "
                   "$TINYFACE_DATASETS/NAME, else ~/.cache/tinyface/datasets/NAME, where "
                   "extra.dirs = [\"NAME\"] finds it). Example: tinyface data fetch lfw --dest /data/lfw")
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A JSON manifest of files and sha256s to use instead of the built-in one. "
                   "Example: tinyface data fetch lfw --manifest lfw-manifest.json")
@click.option("--force", is_flag=True,
              help="Replace an existing dataset folder. Example: tinyface data fetch lfw --dest /data/lfw --force")
@click.option("--timeout", "timeout_s", type=range_type(Interval(0, math.inf)), default=60.0, show_default=True,
              help="Seconds per network read (more than 0; inf: no limit). Example: --timeout 300")
@json_option("tinyface data fetch fairface --json")
@click.pass_context
def fetch(ctx, name, url, dest, manifest, force, timeout_s, as_json):
    """Download NAME, verify every file's sha256, unpack atomically.

    \b
    lfw       LFW deep-funneled + its protocol files: the data every build trains and tests on
    fairface  FairFace's 45,000 face chips (Karkkainen and Joo, 2021; CC BY 4.0): the extra
              faces (no identities) the presets distil from (extra.dirs; docs/data.md)
    utkface   UTKFace's 23,707 aligned faces (non-commercial research only): extra chips
    pins      Pins: 17,534 photos of 105 people, one folder each (no licence stated: research
              only): extra photos, extra.kind = "photos"
    celeba    a CelebA subset: 6,300 photos of 299 people, one folder each (non-commercial
              research only): extra photos, extra.kind = "photos"

    Each extra set is a folder of one public repository at a pinned commit (GitHub's archive
    of the whole repository is downloaded: a few hundred MB). Nothing is kept unless every checksum
    matches, but for a download that stopped short (the network, Ctrl-C, kill): what had arrived
    is kept beside the destination, and running the same command again goes on from there. If the
    destination already holds the verified dataset, nothing is downloaded (so running it twice is
    harmless). A build names a missing set and this command before any work.

    \b
    Examples:
      tinyface data fetch lfw
      tinyface data fetch fairface
      tinyface data fetch fairface --url http://mirror.example/fairface/ --dest /data/fairface
      tinyface data fetch fairface --json        # {"name": "fairface", "path": ..., "downloaded": true, ...}
      tinyface data fetch pins && tinyface build --preset esp32 \\
          --set 'extra.dirs=["fairface","pins"]' --set 'extra.kind=["chips","photos"]'
    """
    from tinyface.config import dataset_dir, dataset_url
    from tinyface.console import PlainProgress, err_console, live_display, status
    from tinyface.data.fetch import Manifest, builtin_manifest, fetch as fetch_dataset, is_occupied

    if manifest:
        try:
            spec = Manifest.load(manifest)
        except ValueError as exc:  # a file the user wrote: a bad option value, as a missing one is (exit 2)
            raise click.BadParameter(str(exc), param_hint="'--manifest'") from None
    else:
        spec = builtin_manifest(name)
    base = url or dataset_url(name)
    if dest:
        target = Path(dest).expanduser()
    else:  # LFW where builds read it: data.dir (tinyface.toml), else the default folder
        target = load_settings(ctx).data.data_path() if name == "lfw" else dataset_dir(name)
    console, received, sizes = err_console(), [0], {}  # sizes: each file's bytes, as its server announced
    # fetch() verifies it and downloads nothing, or says why not
    if not force and is_occupied(target):  # OutputError (exit 14): a --dest that cannot be read
        with status(f"verifying {target}"):
            result = fetch_dataset(spec, base, target, force=False)
    elif live_display(console):
        with console.status(f"downloading {name} from {base}") as spinner:
            def progress(n):
                received[0] += n
                of = f"/{sum(sizes.values()) / 1e6:.1f}" if sizes else ""
                spinner.update(f"downloading {name} from {base}: {received[0] / 1e6:.1f}{of} MB")

            def phase(what):  # the download is over: what it does now, with no byte to count
                spinner.update(f"{what} {name} ({received[0] / 1e6:.1f} MB downloaded)")

            result = fetch_dataset(spec, base, target, progress=progress, timeout_s=timeout_s, force=force,
                                   expect=sizes.__setitem__, phase=phase)
    else:  # a log or a file: a plain line every few seconds, also while it unpacks and verifies
        plain = PlainProgress(f"downloading {name} from {base} (MB)", None).start_heartbeat()

        def progress(n):
            received[0] += n
            plain.update(round(received[0] / 1e6, 2))

        def expect(file: str, n: int):  # the share done and the time left, as far as the servers said
            sizes[file] = n
            plain.total = round(sum(sizes.values()) / 1e6, 2)

        try:
            result = fetch_dataset(spec, base, target, progress=progress, timeout_s=timeout_s, force=force,
                                   expect=expect, phase=lambda what: setattr(plain, "note", f"{what} the download"))
        except BaseException:
            plain.stop()  # no progress line after the fetch's own last words (what it kept, and where)
            raise
        plain.finish()
    # plain echo: a path is neither wrapped nor read as rich markup. Not downloaded also where the
    # folder was missing: fetch() put back the copy an unfinished earlier --force had moved aside
    if result.downloaded:
        click.echo(f"{name} is ready in {result.path}", err=True)
    else:
        click.echo(f"{name} is already in {result.path} (every checksum verified); nothing to download", err=True)
    _how_to_use(name)
    if as_json:
        _fetch_json(name, result, received[0])


def _how_to_use(name: str) -> None:
    """For an extra set: the build's setting that uses it, and its licence (after a download, and
    when it was there already)."""
    source = DATASETS[name]
    if not source.kind:
        return
    from tinyface.config import load_preset, preset_names

    users = [p for p in preset_names() if name in load_preset(p).values.get("extra", {}).get("dirs", [])]
    if users:  # was: "use it with --set extra.dirs=...", as if a plain `tinyface build` left it out
        who = f"the presets {', '.join(users)} distil" if len(users) > 1 else f"the preset {users[0]} distils"
        click.echo(f"{who} from it already (extra.dirs); licence: {source.credit}", err=True)
        return
    use = f"--set 'extra.dirs=[\"{name}\"]'" + ("" if source.kind == "chips" else " --set extra.kind=photos")
    click.echo(f"use it with `tinyface build ... {use}`; licence: {source.credit}", err=True)


def _fetch_json(name: str, result: FetchResult, received: int) -> None:
    """`data fetch --json`: where the verified dataset is, whether this run downloaded it, and whether
    it put back the copy an unfinished earlier `--force` had moved aside."""
    from tinyface.config import DATASETS
    from tinyface.console import print_json

    source = DATASETS[name]
    print_json({"name": name, "path": str(result.path), "downloaded": result.downloaded,
                "bytes_downloaded": received, "put_back": result.put_back,
                "extra_kind": source.kind or None, "credit": source.credit or None})


@data.command()
@click.option("--clear", "parts", multiple=True, type=click.Choice(["faces", "assistant", "native", "isa", "all"]),
              help="Delete this part (repeatable; `all`: every part). It is rebuilt when next needed. "
                   "Example: tinyface data cache --clear assistant --yes")
@click.option("--yes", is_flag=True,
              help="Do not ask before deleting (needed when stdin is not a terminal). "
                   "Example: tinyface data cache --clear all --yes")
@json_option("tinyface data cache --json")
@set_option("data.cache_dir=/tmp/tinyface-cache")
@click.pass_context
def cache(ctx, parts, yes, as_json, set_items):
    """What tinyface keeps between runs, how big it is, and how to clear it.

    \b
    faces      aligned crops and teacher embeddings of every image a build or an
               evaluation used (faces.sqlite in $TINYFACE_CACHE or data.cache_dir,
               else ~/.cache/tinyface/cache), by kind: lmk (landmarks), crop,
               teacher, vcrop/vteacher (teacher views), mteacher (teacher mixes),
               rcrop (hard views: relit and tight crops)
    assistant  a teaching assistant's embeddings (distill.assistant; <faces>/assistant/)
    native     the firmware built for the host ($TINYFACE_NATIVE_CACHE, ~/.cache/tinyface/native)
    isa        the firmware built for the ESP32-C3's rv32 under QEMU ($TINYFACE_ISA_CACHE,
               ~/.cache/tinyface/isa)

    Clearing the face cache costs the next `tinyface build --preset esp32` its one-time
    passes again (alignment and teacher over LFW and the extra faces: about 10 minutes on 2
    cores, measured; README). Only files tinyface wrote are deleted. Do not clear a part while a build uses it.

    \b
    Examples:
      tinyface data cache
      tinyface data cache --clear assistant --yes
      tinyface data cache --json
    """
    from tinyface.console import print_json
    from tinyface.data.cache import CACHE_PARTS, cache_usage, check_cache_dir, clear_cache

    settings = load_settings(ctx, set_items=set_items)
    # a file would read as an empty cache, and fail the next build
    face_dir = check_cache_dir(settings.data.cache_path())
    chosen = list(CACHE_PARTS) if "all" in parts else [p for p in CACHE_PARTS if p in parts]
    freed = {}
    if chosen:
        usage = {row["part"]: row for row in cache_usage(face_dir)}
        what = ", ".join(f"{p} ({_mb(usage[p]['bytes'])})" for p in chosen)
        if not yes and not ask_first("--clear", "delete", what):
            click.echo("nothing deleted", err=True)
            return
        clear_cache(chosen, face_dir)  # all or nothing: a file that cannot be deleted is named first
        freed = {p: usage[p]["bytes"] for p in chosen}
    rows = cache_usage(face_dir)
    if as_json:
        print_json({"parts": rows, "freed_bytes": freed})
        return
    for p, n in freed.items():
        click.echo(f"cleared {p}: {_mb(n)} freed", err=True)
    for row in rows:  # the entries of a part under it, their sizes and counts in its columns
        files = row["files"]
        click.echo(f"{row['part']:<10} {_mb(row['bytes']):>10}  {files:>9,} {'file' if files == 1 else 'files':<7}  "
                   f"{row['path']}")
        for kind, e in (row["entries"] or {}).items():
            click.echo(f"  {kind:<8} {_mb(e['bytes']):>10}  {e['entries']:>9,} entries")
        if row["damaged"]:
            click.echo(f"  {row['damaged']} (`tinyface data cache --clear faces --yes` deletes it)")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@data.command()
@click.option("--data", "data_dir", type=input_path(), default=None, callback=not_empty,
              help="Dataset folder (default: $TINYFACE_DATA, else ~/.cache/tinyface/datasets/lfw). "
                   "Example: --data ~/photos/family")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Decode every image to find unreadable ones. Example: tinyface data stats --no-check")
@click.option("--align", is_flag=True,
              help="Also find the faces (cached): how each was found (detector, detector+equalised, "
                   "landmarks-whole-frame, cnn) and which have none. "
                   "Example: tinyface data stats --data photos/ --align")
@json_option("tinyface data stats --no-check --json | jq .images")
@set_option("data.workers=1")
@click.pass_context
def stats(ctx, data_dir, check, align, as_json, set_items):
    """Identities, images, images-per-person histogram, unreadable files, faces not found.

    \b
    Examples:
      tinyface data stats
      tinyface data stats --data ~/photos/family --align
      tinyface data stats --no-check --json | jq .images
    """
    from tinyface.console import print_json, progress_bar
    from tinyface.data.dataset import load_dataset, require_dataset

    settings = load_settings(ctx, {"data": {"dir": data_dir}}, set_items)
    require_dataset(settings.data.data_path(), named=bool(settings.data.dir))  # absent: say how to get one
    dataset = load_dataset(settings.data.data_path(), min_identities=1)  # stats inspect what no build could use too
    align_result = None
    if align:
        from tinyface.data.cache import FaceCache
        from tinyface.data.faces import FaceSpec, prepare_faces

        with FaceCache(settings.data.cache_path()) as cache, progress_bar("align", len(dataset.images)) as advance:
            align_result = prepare_faces([im.path for im in dataset.images], FaceSpec.from_settings(settings), cache,
                                         workers=settings.data.workers, progress=advance)
    from tinyface.data.stats import dataset_stats

    with progress_bar("check", len(dataset.images) if check and not align else 0) as advance:
        result = dataset_stats(dataset, check=check, align_result=align_result, progress=advance)
    if as_json:
        print_json(result.to_dict())
        return
    _print_stats(result)


def _print_stats(s) -> None:
    from rich.table import Table

    from tinyface.console import out_console

    # soft_wrap: paths are never broken across lines (a terminal wraps them itself); markup
    # off: a file named "photo[1].jpg" is printed as it is
    console = out_console(highlight=False, soft_wrap=True)

    class _Out:
        @staticmethod
        def print(obj):
            console.print(obj, markup=False)

    out = _Out()
    out.print(f"dataset: {s.data}")
    out.print(f"identities: {s.identities:,}   images: {s.images:,}")
    if s.identities < 2:
        out.print("face recognition needs at least 2 people: `tinyface build` and `evaluate` refuse this folder")
    out.print("people with >= 2 / 5 / 10 images: "
              + " / ".join(f"{s.people_with_at_least[k]:,}" for k in (2, 5, 10)))
    table = Table(title="images per person", title_justify="left")
    table.add_column("images", justify="right")
    table.add_column("people", justify="right")
    table.add_column("")
    peak = max(s.images_per_person.values()) or 1
    # an ASCII stdout (PYTHONIOENCODING=ascii, a C locale) cannot print the block: it was an internal error
    bar = "█" if console.encoding.lower().replace("-", "").startswith("utf") else "#"
    for label, n in s.images_per_person.items():
        table.add_row(label, f"{n:,}", bar * max(1 if n else 0, round(30 * n / peak)))
    out.print(table)
    if not s.checked:
        out.print("images were not decoded (--no-check)")
    out.print(f"skipped files: {len(s.skipped)}")
    for line in skipped_lines(s.skipped, 20):
        out.print(line)
    if s.aligned:
        found = {m: n for m, n in s.face_methods.items() if m != "fallback"}
        out.print("faces found: " + (", ".join(f"{n:,} by {m}" for m, n in found.items()) or "none"))
        for path, method in list(s.rescued.items())[:10]:
            out.print(f"  {path}: {method}")
        if len(s.rescued) > 10:
            out.print(f"  ... and {len(s.rescued) - 10} more found other than by the detector (use --json for all)")
        out.print(f"underexposed faces (chips cut brightened): {len(s.normalised)}")
        for path in s.normalised[:10]:
            out.print(f"  {path}")
        if len(s.normalised) > 10:
            out.print(f"  ... and {len(s.normalised) - 10} more (use --json for all)")
        out.print(f"no face found (centered-crop fallback): {len(s.no_face)}")
        for path in s.no_face[:10]:
            out.print(f"  {path}")
