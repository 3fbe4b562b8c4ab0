"""`tinyface flash`: generate the firmware project, build it with PlatformIO and flash a board."""

from __future__ import annotations

import click

from tinyface.cli.common import board_option, input_path, json_option, load_settings, not_empty, set_option
from tinyface.config import FIRMWARE_KERNELS


@click.command()
@board_option("Target board (boards/*.toml; default: firmware.board, esp32). Example: --board esp32s3")
@click.option("--model", "model_path", type=input_path(), default=None, callback=not_empty,
              help="Model bundle folder or model.tflite (default: build/<board>/ if built, else the released "
                   "models/<board>/, then build/esp32/, models/esp32/; bench, emulate and profile pick the same). "
                   "Example: tinyface flash --board esp32s3 --model build/esp32s3")
@click.option("--port", default=None, callback=not_empty,
              help="Serial port, or 'auto' to find the board by its USB VID:PID before anything is rendered, "
                   "as bench does (default: found the same way before the upload). A path that is no serial port "
                   "(nothing there, a file, a folder, /dev/null) or may not be opened, and auto with no board or "
                   "several, are refused before anything is rendered or built (exit 7; --dry-run uses no port and "
                   "checks none); wildcards, COM3, host names and rfc2217:// or socket:// URLs go to PlatformIO as "
                   "they are. "
                   "Example: --port auto")
@click.option("--project-dir", type=click.Path(), default=None, callback=not_empty,
              help="Where the PlatformIO project is generated (default: build/firmware/<board>). "
                   "Example: --project-dir fw/")
@click.option("--enroll", "enroll_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Compile in a gallery: one sub-folder of photos per person (at most 16 people); other files "
                   "(a photo beside the folders) are left out, and a note names them. Example: --enroll photos/")
@click.option("--kernels", type=click.Choice(FIRMWARE_KERNELS), default=None,
              help="Int8 kernels: TFLM's with ESP-NN, or generated for this model (bit-exact with TFLM's "
                   "reference kernels; default: the set the model was built for, model.json kernels, "
                   "else firmware.kernels). Example: --kernels generated")
@click.option("--dry-run", is_flag=True,
              help="Check the budget and render the project only: no PlatformIO, no board. "
                   "Example: tinyface flash --board esp32 --dry-run")
@click.option("--force", is_flag=True,
              help="Overwrite files in --project-dir that tinyface did not generate, or that you edited since it "
                   "generated them (without it such a folder is refused, exit 11). "
                   "Example: tinyface flash --board esp32 --project-dir fw/ --force")
@set_option("firmware.arena_margin=0.2")
@json_option("tinyface flash --board esp32 --dry-run --json")
@click.pass_context
def flash(ctx, board, model_path, port, project_dir, enroll_dir, kernels, dry_run, force, set_items, as_json):
    """Generate the TFLM firmware for a board, build it with PlatformIO and flash it.

    Before anything is written the model is checked against the board's flash and SRAM
    (boards/<board>.toml); over budget, the command fails with the numbers. Then the
    project is rendered from the firmware/ templates (files that did not change are not
    touched; a folder whose files tinyface did not generate is refused unless --force),
    PlatformIO builds it and uploads it to the board (--port, else the one board found by its USB ids).

    \b
    Examples:
      tinyface flash --board esp32 --dry-run          # render and check, no hardware
      tinyface flash --board esp32                    # build, detect the port, upload
      tinyface flash --board esp32 --port auto        # find the board before building (exit 7: none, or several)
      tinyface flash --board esp32s3 --port /dev/ttyACM0 --model build/esp32s3
      tinyface flash --board esp32 --enroll photos/   # with a compiled-in gallery
      tinyface flash --board esp32 --kernels generated --dry-run
      tinyface flash --board esp32 --set firmware.identify_threshold=0.66
                     # IDENTIFY's threshold measured on your own people
                     # (tinyface evaluate --model M --data PHOTOS --target-far 0.01)
    Then: tinyface bench --port auto --board esp32
    """
    from tinyface.boards import load_board
    from tinyface.cli.common import settings_for_model
    from tinyface.console import debug, err_console, info, print_json, progress_bar
    from tinyface.device.flash import flash as flash_board

    overrides = {"firmware": {"board": board, "kernels": kernels}}
    settings = load_settings(ctx, overrides, set_items)
    b = load_board(settings.firmware.board)
    settings, model_path = settings_for_model(ctx, settings, model_path, b.name, overrides, set_items)
    console = err_console()
    result = flash_board(
        b, model=model_path, project_dir=project_dir, port=port, dry_run=dry_run,
        arena_margin=settings.firmware.arena_margin, enroll_dir=enroll_dir, settings=settings,
        kernels=settings.firmware.kernels, identify_threshold=settings.firmware.identify_threshold,
        on_line=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
        on_step=None if as_json else lambda text: _step(text, info, debug), force=force,
        on_warning=lambda text: console.print(f"tinyface: warning: {text}", markup=False, highlight=False,
                                              soft_wrap=True),
        progress_bar=progress_bar,  # aligning --enroll's faces: minutes for a full gallery on a small machine
        on_note=lambda text: console.print(f"note: {text}", markup=False, highlight=False, soft_wrap=True),
    )
    project = result.project
    if as_json:
        print_json(result.to_dict())
        return
    from tinyface.codegen.project import MANIFEST
    from tinyface.protocol.spec import GALLERY_CAPACITY

    changed = len(project.written)  # the manifest counts when it changed
    info(f"project: {project.directory} ({len(project.files)} files and {MANIFEST}, {changed} written"
         f"{', ' + str(len(project.removed)) + ' removed' if project.removed else ''})")
    info(f"model: {result.model_dir} (sha256 {project.model_sha256[:16]}), "
         f"ops: {', '.join(op for op, _ in project.ops)}")
    info(f"budget: {project.budget.summary()}")
    info(f"arena: {project.arena.bytes:,} B = {project.arena.parts()}")
    info(f"identification threshold: {result.identify_threshold:.4f} ({result.identify_threshold_source})")
    if result.gallery:
        people = ", ".join(f"{name} ({samples})" for name, samples in result.gallery)
        info(f"gallery compiled in: {len(result.gallery)} of {GALLERY_CAPACITY} people, photos enrolled: {people}")
    if dry_run:
        info("dry run: nothing built or flashed")
    else:
        info(f"flashed {b.name} on {result.port}; benchmark it: tinyface bench --port {result.port} --board {b.name}")


def _step(text: str, info, debug) -> None:
    # Quiet checks (a failure is one line); the long PlatformIO run is announced.
    (info if text.startswith("building") else debug)(text)
