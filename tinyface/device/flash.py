"""`tinyface flash` as a function: pick the model, check the budget, render the project,
then (unless a dry run) check PlatformIO and the board, build and upload."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinyface.config import DEFAULT_ARENA_MARGIN


@dataclass
class FlashResult:
    board: str
    model_dir: Path
    project: object  # tinyface.codegen.FirmwareProject
    port: str | None = None
    uploaded: bool = False
    dry_run: bool = False  # --dry-run: rendered only, nothing built or uploaded (uploaded is False)
    steps: list[str] = field(default_factory=list)
    identify_threshold: float = 0.0  # IDENTIFY's threshold compiled in
    identify_threshold_source: str = "the model's"  # or "firmware.identify_threshold"
    gallery: list = field(default_factory=list)  # the people compiled in (--enroll): (name, photos enrolled)
    # the files of --enroll's folder left out, as `data stats` lists them: {"path", "reason"}
    skipped: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"board": self.board, "model": str(self.model_dir), "port": self.port, "uploaded": self.uploaded,
                "dry_run": self.dry_run,
                "identify_threshold": self.identify_threshold,
                "identify_threshold_source": self.identify_threshold_source,
                "gallery": [{"name": name, "samples": samples} for name, samples in self.gallery],
                "skipped": self.skipped, "project": self.project.to_dict(), "steps": self.steps}


def default_project_dir(board_name: str) -> Path:
    return Path("build") / "firmware" / board_name


def resolve_model(model: str | Path | None, board) -> Path:
    """The bundle to flash: :func:`tinyface.model.bundle.resolve_model` (bench, emulate and profile use it too).

    Raises:
        ModelError: nothing found (the message says where it looked).
    """
    from tinyface.model.bundle import resolve_model as model_for_board

    return model_for_board(model, board.name)


def check_fits(bundle, board, arena_margin: float = DEFAULT_ARENA_MARGIN, kernels: str = "esp-nn",
               gallery_people: int = 0):
    """Does ``bundle`` fit ``board``'s flash and SRAM as its firmware would be generated? `flash`
    checks this before anything is written, and `emulate` before it serves, so that an emulated
    board never runs a model the real one cannot. Nothing is rendered.

    The figures are tinyface.codegen.project.plan_firmware's, which generate_project renders from.

    Args:
        bundle: the int8 model bundle.
        board: a tinyface.boards.Board.
        arena_margin: firmware.arena_margin.
        kernels: firmware.kernels ("esp-nn" or "generated").
        gallery_people: people compiled into the firmware (flash --enroll).

    Returns:
        (Budget, ArenaPlan): the budget and the arena, placed in SRAM or PSRAM.

    Raises:
        ConfigError: ``board`` is one the generated project cannot describe (a name that is no
            PlatformIO environment name, a flash size ESP-IDF does not know:
            tinyface.codegen.project.check_board).
        ModelError: not a model the firmware runs (not int8, model.json disagrees with the .tflite).
        BudgetError: over a limit; the message has the numbers, the hint what to do (first the
            board the model was built for, when that is another board and the model fits it).
    """
    from tinyface.boards import board_names, load_board
    from tinyface.codegen.project import plan_firmware
    from tinyface.errors import BudgetError, TinyfaceError

    try:
        plan = plan_firmware(bundle, board, arena_margin, kernels, gallery_people)
        return plan.budget, plan.arena
    except BudgetError as exc:
        built_for = bundle.meta.preset
        if built_for == board.name or built_for not in board_names():
            raise
        try:  # name that board only if the model fits it, with the same margin, kernels and gallery
            plan_firmware(bundle, load_board(built_for), arena_margin, kernels, gallery_people)
        except TinyfaceError:
            raise exc from None
        raise BudgetError(str(exc), hint=f"{bundle.model_path.parent} was built for {built_for}: use --board "
                                         f"{built_for}; or {exc.hint or 'a model built for ' + board.name}") from None


def check_gallery_folder(enroll_dir: str | Path) -> tuple[int, list]:
    """The number of people (person folders) `flash --enroll` would compile in from ``enroll_dir``,
    checked against the device's gallery, and their names against the protocol's, before any face
    is aligned; and the files of ``enroll_dir`` it leaves out (tinyface.data.dataset.Skipped: a photo
    beside the person folders, a file that is no image, ...), as `tinyface data stats` lists them.

    Raises:
        DataError: ``enroll_dir`` is not a folder of person folders holding images, or a folder's
            name is no gallery name (tinyface.codegen.gallery.gallery_names).
        GalleryFullError: more people than the device's gallery holds.
    """
    from tinyface.codegen.gallery import gallery_names
    from tinyface.data.dataset import load_dataset

    dataset = load_dataset(enroll_dir, min_identities=1)
    return len(gallery_names(enroll_dir, dataset)), list(dataset.skipped)


SKIPPED_SHOWN = 3  # files named in the note on those left out; --json lists them all


def left_out_note(enroll_dir: str | Path, skipped: list) -> str:
    """One line on the files of ``enroll_dir`` that `flash --enroll` leaves out, each with its reason
    in `tinyface data stats`'s words: "left out 2 files of photos/, not in the gallery:
    Adrien_Brody_0001.jpg: image outside a person folder (whose photo is it?); Ann/notes.txt: not an
    image file (extension .txt)"; past SKIPPED_SHOWN, "and N more" (`data stats` and --json list all)."""
    root = Path(enroll_dir)

    def shown(path: Path) -> str:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            return str(path)

    items = "; ".join(f"{shown(item.path)}: {item.reason}" for item in skipped[:SKIPPED_SHOWN])
    more = (f"; and {len(skipped) - SKIPPED_SHOWN} more (`tinyface data stats --data {enroll_dir}` lists them all)"
            if len(skipped) > SKIPPED_SHOWN else "")
    return f"left out {len(skipped)} file{'s' * (len(skipped) != 1)} of {enroll_dir}, not in the gallery: {items}{more}"


def flash(board, model: str | Path | None = None, project_dir: str | Path | None = None, port: str | None = None,
          dry_run: bool = False, arena_margin: float = DEFAULT_ARENA_MARGIN, enroll_dir: str | Path | None = None,
          settings=None, on_line=None, on_step=None, force: bool = False, on_warning=None,
          kernels: str = "esp-nn", identify_threshold: float = 0.0, progress_bar=None, on_note=None) -> FlashResult:
    """Generate the firmware project for ``board`` and (unless ``dry_run``) build and flash it.

    Args:
        board: a tinyface.boards.Board.
        model: a bundle folder or model.tflite (default: see resolve_model).
        project_dir: where the PlatformIO project goes (default build/firmware/<board>).
        port: serial port (default: detected by the board's USB ids before the upload). By the
            port rule of bench and the gallery commands (:func:`tinyface.device.ports.resolve_port`),
            checked before anything is done: ``auto`` is the one connected board found by its USB
            ids; a path that is no serial port (nothing there, a file, a folder, ``/dev/null``) or
            that may not be opened is refused, and a relative one is handed on absolute;
            wildcards, ``COM3``, host names and URLs go to PlatformIO as they are.
        dry_run: render and check only; no PlatformIO, no board.
        arena_margin: firmware.arena_margin.
        enroll_dir: one folder per person, compiled in as the initial gallery.
        settings: tinyface settings (needed with enroll_dir: face detection, cache).
        on_line: called with each line PlatformIO prints.
        on_step: called with a one-line description of each step as it starts.
        force: overwrite files in ``project_dir`` that tinyface did not generate.
        on_warning: called with a one-line warning before anything is done (a smoke-test model).
        kernels: firmware.kernels ("esp-nn" or "generated").
        identify_threshold: firmware.identify_threshold (0: the model's own).
        progress_bar: ``(description, total)`` -> a context manager yielding ``advance`` (with
            ``set_total``), as tinyface.console.progress_bar: the progress of aligning ``enroll_dir``'s faces.
        on_note: called with a one-line note before the gallery's faces are aligned: the files of
            ``enroll_dir`` left out and why (:func:`left_out_note`; all of them in ``result.skipped``).

    Raises:
        ConfigError, ModelError, BudgetError (:func:`check_fits`), DataError, NoFaceError: before
            anything is written.
        GalleryFullError: ``enroll_dir`` has more people than the device's gallery holds
            (checked before the budget, and before any face is aligned).
        ProjectDirError: ``project_dir`` holds files tinyface did not generate where the
            project's files go, generated files edited since, or is a folder of other files that
            is not a tinyface project (without ``force``; refused before the gallery's faces are
            aligned, nothing written).
        OutputError: ``project_dir`` cannot be created (a file in the way, no permission), before
            the gallery's faces are aligned.
        ToolchainError: PlatformIO or the espressif32 platform missing, or the build failed.
        DeviceError: ``port`` is a path that is no serial port or may not be opened, or ``auto``
            and not one board connected (refused first, before the model is read or anything is
            rendered; not on a dry run, which uses no port); or, without ``port``, no board
            connected at the upload (the ports seen are listed).
    """
    from tinyface.codegen import generate_project
    from tinyface.codegen.project import check_project_dir
    from tinyface.device import platformio
    from tinyface.device.ports import find_port, resolve_port
    from tinyface.errors import ToolchainError
    from tinyface.fsutil import check_creatable_dir
    from tinyface.model.bundle import load_bundle

    if not dry_run:  # a typo in --port, or no board for auto, is one line now, not after the build
        port = resolve_port(port, board)

    def step(text: str) -> None:
        result.steps.append(text)
        if on_step:
            on_step(text)

    model_dir = resolve_model(model, board)
    bundle = load_bundle(model_dir).identifying_at(identify_threshold)
    if bundle.meta.smoke_test:
        from tinyface.model.bundle import smoke_test_warning

        result_warning = smoke_test_warning(model_dir)
        if on_warning:
            on_warning(result_warning)
    gallery = ()
    project_dir = Path(project_dir) if project_dir else default_project_dir(board.name)
    check_creatable_dir(project_dir, "--project-dir")  # before the gallery's faces are aligned
    check_project_dir(project_dir, force)  # a folder of other files: refused as generate_project would, earlier
    result = FlashResult(board.name, model_dir, None, identify_threshold=bundle.meta.identify_at,
                         identify_threshold_source="firmware.identify_threshold" if identify_threshold
                         else "the model's", dry_run=dry_run)
    people, skipped = check_gallery_folder(enroll_dir) if enroll_dir else (0, [])
    result.skipped = [{"path": str(item.path), "reason": item.reason} for item in skipped]
    if skipped and on_note:  # photos beside the person folders went unmentioned: whose were they?
        on_note(left_out_note(enroll_dir, skipped))
    step(f"checking {model_dir} against the flash and SRAM of {board.name}")
    _, arena = check_fits(bundle, board, arena_margin=arena_margin, kernels=kernels, gallery_people=people)
    if enroll_dir:  # the slow part (every face aligned and embedded), once the model is known to fit
        from tinyface.codegen.gallery import enroll_folder
        from tinyface.console import no_step

        step(f"enrolling the people in {enroll_dir}")
        with (progress_bar or no_step)("aligning faces", None) as advance:
            gallery = enroll_folder(enroll_dir, bundle, settings, progress=advance, on_total=advance.set_total)
        result.gallery = [(person.name, person.samples) for person in gallery]
    step(f"generating the firmware project in {project_dir}")
    result.project = generate_project(bundle, board, project_dir, arena_margin=arena_margin, gallery=gallery,
                                      force=force, kernels=kernels, arena_used_bytes=arena.used_bytes)
    if dry_run:
        return result
    step("checking PlatformIO and the espressif32 platform")
    try:
        platformio.pio_command()
        platformio.check_platform(board)
    except ToolchainError as exc:  # checked after rendering on purpose: the project is kept, and says so
        raise ToolchainError(f"{exc}; the rendered project is kept in {project_dir}", hint=exc.hint) from None
    result.port = port or find_port(board)
    step(f"building and uploading with PlatformIO to {result.port}")
    platformio.build_and_upload(project_dir, board.name, result.port, on_line=on_line)
    result.uploaded = True
    return result
