"""`tinyface build`: distill -> prune -> quantize -> evaluate -> report, as stages.

Each stage writes its artifacts into ``<out>/<stage>/`` atomically and, last, a
``stage.json`` holding the fingerprint of everything it was made from (its settings and
the fingerprints of the stages before it). A re-run skips a stage whose fingerprint is
unchanged and whose artifacts are all present; an interrupted stage has no stage.json
and is redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from tinyface.console import raise_if_interrupted
from tinyface.evaluation.report import BUILD_REPORT_FILES, BuildMetrics
from tinyface.fsutil import write_bytes, write_json
from tinyface.model.bundle import SPLIT_KEY, STAGE_RECORD, STAGES_KEY, split_record, stage_fingerprint

# data settings only the evaluation reads
EVALUATE_ONLY = ("identify_stranger_rate", "identify_gallery", "threshold_from")
# Every tinyface module a build's stages import, loaded when the build starts: a build runs
# for up to an hour, and a module first imported at its end (the evaluation, the report)
# would otherwise come from whatever version of tinyface is installed *then* (an edit or an
# upgrade meanwhile crashed a build once). tests/train/test_pipeline.py checks the list.
STAGE_MODULES = (
    "tinyface.boards", "tinyface.boards.plots", "tinyface.boards.profile", "tinyface.config",
    "tinyface.evaluation.metrics", "tinyface.model.bundle",
    "tinyface.model.embedder", "tinyface.model.keras_io",
    "tinyface.model.graph", "tinyface.model.runtime", "tinyface.evaluation.report", "tinyface.data.align",
    "tinyface.data.dataset", "tinyface.data.extra", "tinyface.data.faces", "tinyface.data.hard_photos",
    "tinyface.teacher",
    "tinyface.teacher.dlib_net", "tinyface.train.assistant", "tinyface.train.build_data", "tinyface.train.distill",
    "tinyface.train.prune",
    "tinyface.train.quantize", "tinyface.train.search", "tinyface.train.stages_eval", "tinyface.train.student",
)
CODE_VERSION = "pipeline-v1"  # bump when a stage's behaviour changes, to invalidate old artifacts


@dataclass
class StageInfo:
    name: str
    fingerprint: str
    skipped: bool
    seconds: float  # this run's
    # what earlier runs, stopped, spent on the training this one took up (_epochs_saved): the stage's
    # work took seconds + earlier_seconds in all (less the work they lost after their last save)
    earlier_seconds: float = 0.0

    def to_dict(self, fingerprint: bool = False) -> dict:
        """The stage as `build --json`'s ``stages``, report.json's and validation.json's
        ``stages_run`` give it (report.json adds its ``fingerprint``): ``reused`` when its earlier
        artifacts were kept (unchanged inputs), times in seconds."""
        return {"name": self.name, **({"fingerprint": self.fingerprint} if fingerprint else {}), "reused": self.skipped,
                "elapsed_s": round(self.seconds, 1), "earlier_s": round(self.earlier_seconds, 1)}


@dataclass
class BuildResult:
    out_dir: Path
    stages: list[StageInfo] = field(default_factory=list)
    metrics: BuildMetrics | None = None
    bundle_dir: Path | None = None
    histories: dict[str, dict] = field(default_factory=dict)  # training curves by stage (Keras histories)
    people: str = ""  # the people its data split (BuildData.people), for model.json's extra.split


def fingerprint(*parts) -> str:
    blob = json.dumps([CODE_VERSION, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Stage:
    """A stage folder with its fingerprint record."""

    def __init__(self, out_dir: Path, name: str, fp: str, artifacts: list[str]):
        self.dir = out_dir / name
        self.name = name
        self.fp = fp
        self.artifacts = artifacts
        # what earlier runs, stopped, spent on the training this run takes up (_epochs_saved)
        self.earlier_seconds = 0.0

    def done(self) -> bool:
        return stage_fingerprint(self.dir) == self.fp and all((self.dir / a).exists() for a in self.artifacts)

    def path(self, artifact: str) -> Path:
        return self.dir / artifact

    def finish(self, extra: dict | None = None) -> None:
        write_json(self.dir / STAGE_RECORD, {"stage": self.name, "fingerprint": self.fp, **(extra or {})})

    def invalidate(self) -> None:
        (self.dir / STAGE_RECORD).unlink(missing_ok=True)


Progress = Callable[[str, dict], None]
T = TypeVar("T")


class Stages:
    """The bookkeeping every stage shares: its fingerprint record (skip when done, invalidate
    before redoing, record when finished), its timing (a StageInfo), and the progress events
    ("stage" when it starts, "done" when it ends).

    Args:
        out_dir: the run folder; a stage's artifacts go to ``<out_dir>/<name>/``.
        notify: the progress callback, ``notify(event, info)``.
        force: redo every stage, even one whose fingerprint and artifacts are all there.
        say: ``notify`` for what a stage says as the run stops (not ``notify``, which raises a
            Ctrl-C again first); default: ``notify``.
    """

    def __init__(self, out_dir: Path, notify: Progress, force: bool = False, say: Progress | None = None):
        self.out_dir = out_dir
        self.notify = notify
        self.say = say or notify
        self.force = force
        self.ran: list[StageInfo] = []

    def run(self, name: str, fp: str, artifacts: list[str], make: Callable[[Stage], T],
            load: Callable[[Stage], T] | None = None, **start) -> T:
        """Skip the stage when its record matches ``fp`` and its artifacts exist (``load(stage)``
        then returns its value from them); else ``make(stage)`` writes the artifacts and
        returns the value, and the record is written last (an interrupted stage has none)."""
        st = Stage(self.out_dir, name, fp, artifacts)
        t0 = time.perf_counter()
        self.notify("stage", {"name": name, **start})
        skipped = not self.force and st.done()
        if skipped:
            value = load(st) if load else None
        else:
            st.invalidate()
            value = make(st)
            raise_if_interrupted()  # a Ctrl-C that a library swallowed: the stage is not recorded
            st.finish()
        earlier = st.earlier_seconds
        self.ran.append(StageInfo(name, fp, skipped, time.perf_counter() - t0, earlier))
        self.notify("done", {"name": name, "skipped": skipped, **({"earlier_seconds": earlier} if earlier else {})})
        return value

    def always(self, name: str, make: Callable[[], T], fp: Callable[[T], str], done: Callable[[T], dict] | None = None
               ) -> T:
        """A step with no record of its own, run every time (the data, whose images are cached
        per file, and the report): timed and announced like a stage; ``fp(value)`` is its
        fingerprint, ``done(value)`` extra information for the "done" event."""
        t0 = time.perf_counter()
        self.notify("stage", {"name": name})
        value = make()
        self.ran.append(StageInfo(name, fp(value), False, time.perf_counter() - t0))
        self.notify("done", {"name": name, **(done(value) if done else {})})
        return value


def _interruptible(notify: Progress) -> Progress:
    """``notify`` that first ends the run if Ctrl-C was pressed (console.catch_interrupts): every
    progress event is a point where an interrupt lost inside TensorFlow is raised again."""
    def checked(event: str, info: dict) -> None:
        raise_if_interrupted()
        notify(event, info)
    return checked


@dataclass
class _TrainingSet:
    """What every training stage fits on: crops, centered (smoothed) teacher targets, the
    augmentation mode, the validation targets, and (distill.neighbours > 0) each row's nearest
    original faces, found when a stage first trains (a cached build never pays for them)."""

    x: np.ndarray
    targets: np.ndarray
    augment: bool | str
    val_targets: np.ndarray
    originals: np.ndarray
    neighbours: int = 0
    light: float = 0.0  # distill.light_augment (make_dataset applies it only with augment)
    identity_weight: float = 0.0
    identity_margin: float = 0.2
    identities: np.ndarray | None = None  # per row: its person's index, -1 none (distill.identity_weight)
    people: np.ndarray | None = None  # each person's centroid of the targets
    _partners: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        """What the training loss gets as y_true: the targets (and each row's person with the identity term)."""
        if self.identities is None:
            return self.targets
        return np.concatenate([self.targets, self.identities[:, None].astype(np.float32)], axis=1)

    @property
    def val_y(self) -> np.ndarray:
        """The validation rows' y_true (no person: the identity term is over training people)."""
        if self.identities is None:
            return self.val_targets
        return np.concatenate([self.val_targets, np.full((len(self.val_targets), 1), -1, np.float32)], axis=1)

    def partners(self, notify: Progress | None = None, epochs: int = 0) -> np.ndarray | None:
        """distill.neighbours' partners of every row, found once (about a minute for 150,000 rows).

        With ``notify``, the search shows as a step of the running stage, whose ``epochs`` the
        progress display then counts again.
        """
        from tinyface.train import distill

        if self.neighbours and self._partners is None:
            if len(self.originals) <= self.neighbours:
                from tinyface.errors import ConfigError

                raise ConfigError(f"distill.neighbours = {self.neighbours} needs more than that many training faces; "
                                  f"this build has {len(self.originals)}", hint="use a smaller distill.neighbours")
            progress = None
            if notify:
                notify("step", {"name": "nearest faces (distill.neighbours)", "total": len(self.targets)})
                progress = lambda n: notify("advance", {"n": n})  # noqa: E731
            self._partners = distill.nearest_partners(self.targets, self.originals, self.neighbours,
                                                      progress=progress)
            if notify:
                notify("step", {"name": "epochs", "total": epochs})
        return self._partners

    def loss(self, weights, centroids: np.ndarray | None = None):
        """The distillation loss for these batches (paired with neighbours)."""
        from tinyface.train import distill

        return distill.make_loss(weights, centroids, paired=self.neighbours > 0, people=self.people,
                                 identity_weight=self.identity_weight, identity_margin=self.identity_margin)


def load_stage_modules() -> None:
    """Import STAGE_MODULES now (see there why)."""
    import importlib

    for name in STAGE_MODULES:
        importlib.import_module(name)


def check_run_folder(out_dir: str | Path) -> None:
    """Refuse, before anything is written, a build into a folder that holds files of its own: the
    build would write report.md, model.tflite, model.json and more among them, over any of the same
    name. A missing or empty folder passes, and so does a run folder of an earlier build (its lock
    file, or a stage's record): its finished stages are reused.

    Raises:
        OutputError: ``out_dir`` is neither (exit 14), naming what is there.
    """
    from tinyface.errors import OutputError
    from tinyface.fsutil import LOCK_NAME

    out_dir = Path(out_dir)
    try:
        entries = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
        if not entries or (out_dir / LOCK_NAME).exists() or any((e / STAGE_RECORD).is_file() for e in entries):
            return
    except OSError:  # unreadable, or a folder in it that cannot be searched: ensure_dir, or the build, says so
        return
    names = [e.name for e in entries]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise OutputError(f"--out {out_dir} is not a tinyface build folder and not empty ({shown}): the build's "
                      f"report.md, model.tflite, model.json and stage folders would be written among them",
                      hint="choose an empty or new --out; a build folder of an earlier run is reused")


def run_build(settings, preset, out_dir: Path, quick: bool = False, report_progress: Progress | None = None,
              ui=None, force: bool = False) -> BuildResult:
    """Run the whole chain; see the module docstring for skipping and atomicity.

    Args:
        force: redo every stage, even those whose inputs did not change.
    """
    load_stage_modules()  # TensorFlow comes after use_legacy_keras: tinyface/train/__init__.py
    from tinyface.console import one_op_at_a_time
    from tinyface.fsutil import exclusive_folder, scratch_tempdir

    one_op_at_a_time()  # before TensorFlow's first op: QAT is then reproducible

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # one build at a time in a folder: a second would mix its stages with this one's and empty its .tmp
    with exclusive_folder(out_dir, "--out", "tinyface build"), scratch_tempdir(out_dir):
        _remove_temp_leftovers(out_dir)
        return _run_build(settings, preset, out_dir, quick, report_progress, force)


def _remove_temp_leftovers(out_dir: Path) -> list[Path]:
    """Remove what earlier builds killed outright (SIGKILL, the out-of-memory killer) left of their
    atomic writes in the run folder and its stage folders: a half-saved ``.student.keras.*.keras``
    weighs megabytes, and nothing else would ever remove it. Only for the lock's holder (run_build):
    a running build's temp files have the same names. Returns the files removed."""
    from tinyface.fsutil import remove_temp_leftovers as remove_in

    removed = remove_in(out_dir)
    for folder in sorted(out_dir.iterdir()):
        if folder.is_dir() and not folder.is_symlink() and not folder.name.startswith("."):
            removed += remove_in(folder)
    return removed


def _run_build(settings, preset, out_dir: Path, quick: bool, report_progress: Progress | None, force: bool):
    from tinyface.train.build_data import load_build_data

    notify = _interruptible(report_progress or (lambda event, info: None))
    d = settings.data

    check_dataset_size(d)  # in seconds, before the faces are aligned and anything is trained
    if settings.extra.dirs:
        from tinyface.data.extra import require_extra

        require_extra(settings.extra)  # missing extra faces: one line naming the command that gets them
    from tinyface.train import assistant

    assistant_folder = assistant.check(settings)  # a missing or unfit assistant: one line, before any work
    stages = Stages(out_dir, notify, force, say=report_progress or (lambda event, info: None))
    data = stages.always("data", lambda: load_build_data(
                             settings, quick=quick, progress=lambda n: notify("advance", {"n": n}),
                             step=lambda name, total: notify("step", {"name": name, "total": total})),
                         fp=lambda data: _data_fingerprint(settings, quick, data),
                         done=lambda data: {"stats": data.stats})
    data_fp = stages.ran[-1].fingerprint
    training = build_training_set(data, settings.distill)
    if assistant_folder is not None:
        data_fp = _assist(stages, settings, quick, data, training, assistant_folder, data_fp)

    histories: dict[str, dict] = {}
    float_model, histories["distill"], distill_fp = _distill(stages, settings, data, training, data_fp)
    pruned_model, prune_fp = None, distill_fp
    if settings.prune.enabled:
        pruned_model, histories["prune"], prune_fp = _prune(stages, settings, data, training, float_model, distill_fp)
    else:  # said, where the stage would run (was: no line at all)
        stages.notify("stage", {"name": "prune"})
        stages.notify("done", {"name": "prune", "off": "prune.enabled = false: the distilled model is quantized"})
    to_quantize = pruned_model if pruned_model is not None else float_model
    quant_fp, qat_history = _quantize(stages, settings, data, training, to_quantize, pruned_model is not None,
                                      prune_fp)
    if qat_history:  # the QAT candidate's epochs, whichever of PTQ and QAT was kept
        histories["QAT"] = qat_history
    metrics, eval_fp = _evaluate(stages, settings, preset, data, float_model, pruned_model, quant_fp, data_fp)
    metrics.dataset = describe_dataset(d.data_path())
    metrics.smoke_test = bool(quick)
    result = BuildResult(out_dir, stages.ran, metrics, histories=histories, people=data.people)
    stages.always("report", lambda: _report(out_dir, result, settings, preset), fp=lambda _: eval_fp)
    return result


def _data_fingerprint(settings, quick: bool, data) -> str:
    """The data's fingerprint: every data setting but those only the evaluate stage reads (they
    go into its fingerprint, so changing them re-runs the evaluation, not the training)."""
    extra = [{k: v for k, v in asdict(settings.extra).items() if k != "dirs"}] if settings.extra.dirs else []
    return fingerprint({k: v for k, v in asdict(settings.data).items() if k not in EVALUATE_ONLY}, quick, data.stats,
                       *extra)


def build_training_set(data, ds) -> _TrainingSet:
    """What the training stages fit on, from the build's data and its distill settings."""
    from tinyface.train import distill

    centered_on = [data.train.teacher]
    if ds.center == "all" and data.extra is not None:
        centered_on.append(data.extra.teacher)
    center = distill.teacher_center(np.concatenate(centered_on))
    x_train, t_train, augment, originals = distill.training_set(data, center, ds.target_smoothing)
    out = _TrainingSet(x_train, t_train, augment if ds.augment else False,
                       distill.center_targets(data.val.teacher, center), originals, ds.neighbours,
                       ds.identity_weight, ds.identity_margin, ds.light_augment)
    if ds.identity_weight > 0:
        out.identities, out.people = distill.training_identities(data, t_train)
        if not len(out.people):
            from tinyface.errors import ConfigError

            raise ConfigError("distill.identity_weight needs training people with >= 2 photos; this build has none",
                              hint="set distill.identity_weight = 0")
    return out


def _assist(stages: Stages, settings, quick: bool, data, training: _TrainingSet, folder: Path, data_fp: str) -> str:
    """Blend the assistant's embeddings into the training and validation targets (distill.assistant);
    records what it is and how it scores in ``data.stats["assistant"]``. Returns the fingerprint
    the training stages build on: the data's and the assistant model's."""
    from tinyface.train import assistant
    from tinyface.train.stages_eval import validation_accuracy

    notify = stages.notify
    ta = stages.always("assistant", lambda: assistant.embed_rows(
                           folder, settings, quick, len(training.targets), data_fp,
                           progress=lambda n: notify("advance", {"n": n}),
                           step=lambda name, total: notify("step", {"name": name, "total": total})),
                       fp=lambda ta: fingerprint(data_fp, ta.sha256), done=lambda ta: {"cached": ta.cached})
    weight = settings.distill.assistant_weight
    data.stats["assistant"] = {
        "model": ta.name, "sha256": ta.sha256, "input_shape": ta.input_shape, "crop_padding": ta.crop_padding,
        "weight": weight, "val_pairs_accuracy": validation_accuracy(ta.val, data.val.labels),
        "cosine_to_teacher_val": float(np.mean(np.sum(ta.val * training.val_targets, axis=1))),
        "cosine_to_teacher_train": float(np.mean(np.sum(ta.train * training.targets, axis=1)))}
    training.targets = assistant.blend(training.targets, ta.train, weight)
    training.val_targets = assistant.blend(training.val_targets, ta.val, weight)
    return stages.ran[-1].fingerprint


def _epoch_events(notify: Progress):
    return lambda e, logs: notify("epoch", {"epoch": e + 1, "logs": logs})


def _batch_events(notify: Progress):
    """Within an epoch: the epochs done so far, as a float (an epoch can take minutes)."""
    return lambda epochs: notify("epoch_progress", {"epoch": epochs})


def _distill(stages: Stages, settings, data, training: _TrainingSet, data_fp: str):
    """The float student distilled from the teacher: (model, Keras history, fingerprint)."""
    from tinyface.model.keras_io import load_keras, save_keras
    from tinyface.train import distill, student
    from tinyface.train.search import search_hyperparameters

    d, s, ds = settings.data, settings.student, settings.distill
    fp = distill_fingerprint(data_fp, settings)
    seed = ds.training_seed(d.seed)

    def make(st: Stage):
        input_shape = (d.crop_size, d.crop_size, d.channels)
        labels = data.train.labels
        t_train = training.targets

        def centroids_for(alpha: float):
            return distill.identity_centroids(t_train[: len(labels)], labels) if alpha > 0 else None

        def train(weights, lr: float, epochs: int, progress: bool = True, checkpoint=None):
            """The one way a student is trained here: the final one, and each search trial."""
            distill.seed_everything(seed)  # the initial weights
            model, _ = student.build_student(s.arch, input_shape, s.embedding_dim, s.width, branches=s.branches,
                                             repeats=s.repeats)
            hist = distill.fit(model, training.x, training.y, data.val.crops, training.val_y,
                               epochs, ds.batch_size, lr, training.loss(weights, centroids_for(weights.alpha)),
                               augment=training.augment, light=training.light, seed=seed,
                               on_epoch=_epoch_events(stages.notify) if progress else None,
                               on_progress=_batch_events(stages.notify) if progress else None,
                               partners=training.partners(stages.notify if progress else None, epochs),
                               ema=ds.ema, checkpoint=checkpoint)
            return model, hist

        weights = distill.LossWeights(ds.cosine_weight, ds.relation_weight, ds.alpha, ds.temperature)
        lr = ds.learning_rate
        search = None

        def trial(alpha, temperature, trial_lr, epochs):
            w = distill.LossWeights(ds.cosine_weight, ds.relation_weight, alpha, temperature)
            return train(w, trial_lr, epochs, progress=False)[0]

        with _trials_saved(stages, st, ds.search_trials) as (saved, taking_up):
            if ds.search_trials > 0:
                search = search_hyperparameters(settings, data, trial, ds.search_trials, stages.notify, saved,
                                                taking_up)
                weights.alpha, weights.temperature = search["alpha"], search["temperature"]
                lr = search["learning_rate"]
            with _epochs_saved(stages, st, fingerprint(fp, lr, asdict(weights)), ds.epochs) as checkpoint:
                model, hist = train(weights, lr, ds.epochs, checkpoint=checkpoint)
                fused = None
                if s.branches:
                    model, fused = _fuse_branches(model, s, input_shape, training.x, seed)
                save_keras(model, st.path("student.keras"))
                write_json(st.path("history.json"), {"history": hist.history, "search": search,
                                                     "learning_rate": lr, "alpha": weights.alpha,
                                                     "temperature": weights.temperature, "fuse_error": fused})
            saved.clear()  # history.json holds the search now
        return model, hist.history

    def load(st: Stage):
        return load_keras(st.path("student.keras")), _read_history(st.path("history.json"))

    model, history = stages.run("distill", fp, ["student.keras", "history.json"], make, load, epochs=ds.epochs)
    return model, history, fp


# In a training stage's folder (distill, prune) while it trains: its epochs so far
# (tinyface.train.distill.Checkpoint).
CHECKPOINT_DIR = "checkpoint"


# In the distill stage's folder while distill.search_trials > 0 searches: the trials scored so far
# (tinyface.train.search.SavedTrials).
SEARCH_TRIALS = "search.json"


@contextlib.contextmanager
def _trials_saved(stages: Stages, st: Stage, trials: int):
    """The distill stage's search trials saved (SavedTrials in ``st``'s SEARCH_TRIALS, keyed by the
    stage's fingerprint) for the block (the search and the final training), and the callback that
    says so when a search takes them up: a run stopped in the search goes on after its last trial
    scored, and one stopped in the final training does not search again; --force starts over.
    The stage removes the file once history.json holds the search."""
    from tinyface.train.search import SavedTrials

    saved = SavedTrials(st.path(SEARCH_TRIALS), st.fp)
    if stages.force:
        saved.clear()

    def taking_up(n: int, seconds: float) -> None:
        st.earlier_seconds += seconds
        stages.notify("note", {"text": f"taking up the search after trial {n} of {trials}, which an earlier run "
                                       f"saved"})

    try:
        yield saved, taking_up
    except BaseException:  # Ctrl-C, SIGTERM, a failure: say what the next run goes on from
        n = len(saved.load())
        if n:
            stages.say("note", {"text": f"stopped: {n} of {trials} search trials saved, the same command goes on "
                                        f"after them"})
        raise


@contextlib.contextmanager
def _epochs_saved(stages: Stages, st: Stage, key: str, epochs: int):
    """A training stage's checkpoint (distill.Checkpoint in ``st``'s CHECKPOINT_DIR, ``key`` naming
    the training) for the block, which trains and writes the stage's artifacts: every epoch is
    saved, and every distill.Checkpoint.EVERY_S within one, so a run stopped in it (Ctrl-C,
    SIGTERM, kill -9) goes on from the last state saved, to the same model, and says so when it
    stops and when it takes up; --force, or other settings (another key), start over. Removed
    once the block has written the artifacts."""
    from tinyface.train import distill

    def taking_up(start, n: int) -> None:
        where = (f"epoch {start.epochs_done + 1} of {n} after its batch {start.batches_done} of {start.steps}"
                 if start.batches_done else f"after epoch {start.epochs_done} of {n}")
        st.earlier_seconds += start.seconds
        stages.notify("note", {"text": f"taking up {where}, which an earlier run saved"})

    checkpoint = distill.Checkpoint(st.path(CHECKPOINT_DIR), key, on_resume=taking_up)
    if stages.force:
        checkpoint.clear()
    try:
        yield checkpoint
    except BaseException:  # Ctrl-C, SIGTERM, a failure: say what the next run goes on from
        saved = checkpoint.latest()
        if saved is not None:
            at = distill.Resume.of(saved[1])
            text = (f"stopped: epoch {at.epochs_done + 1} of {epochs} saved up to its batch {at.batches_done} of "
                    f"{at.steps}, the same command goes on from there" if at.batches_done else
                    f"stopped: {at.epochs_done} of {epochs} epochs saved, the same command goes on after them")
            stages.say("note", {"text": text})
        raise
    checkpoint.clear()  # the stage's artifacts hold it all now


def distill_fingerprint(data_fp: str, settings) -> str:
    """The distill stage's fingerprint: the data's, the student's, the distillation's and the
    teacher's settings (a setting added later counts only when not at its default)."""
    return fingerprint(data_fp, settings.student.key(), _distill_key(settings.distill), asdict(settings.teacher))


# the fused student's embeddings (about 1 in size) may differ from the branched one's by float
# round-off; more means the folding is wrong, and the build stops before anything trusts it
FUSE_TOLERANCE = 1e-3


# settings added after builds were recorded, at the value that trains as before they existed
_DISTILL_KEYS_ADDED_LATER = {"seed": -1, "ema": 0.0}


def _distill_key(ds) -> dict:
    """The distillation settings a stage's fingerprint holds: all of them, but those added later
    (``seed``, ``ema``) only when not at the value that trains as every build before them did,
    so those builds' stages stay valid."""
    key = asdict(ds)
    for name, before in _DISTILL_KEYS_ADDED_LATER.items():
        if key[name] == before:
            del key[name]
    if ds.search_trials > 0:  # since the trials train as the build does: a search stage made before is redone
        key["search_trials_train_as_the_build"] = True
    return key


def _fuse_branches(branched, s, input_shape, crops: np.ndarray, seed: int, sample: int = 2048):
    """The plain student with ``branched``'s function (student.fuse), and the largest difference
    of their embeddings on a sample of training crops."""
    from tinyface.train import distill, student

    x = distill.scaled_sample(crops, seed, sample)
    plain, _ = student.build_student(s.arch, input_shape, s.embedding_dim, s.width, repeats=s.repeats)
    error = student.fuse(branched, plain, x)
    if not error <= FUSE_TOLERANCE:
        # a bug, not a user's error: the CLI reports it as an internal error (exit 70)
        raise RuntimeError(f"folding the student's branches changed its embeddings by {error:.3g}: a bug, "
                           "nothing was saved")
    return plain, error


def _prune(stages: Stages, settings, data, training: _TrainingSet, float_model, distill_fp: str):
    """The float student pruned to prune.target_sparsity and fine-tuned: (model, history, fingerprint)."""
    from tinyface.model.keras_io import load_keras, save_keras
    from tinyface.train import distill, prune

    d, ds, pr = settings.data, settings.distill, settings.prune
    fp = fingerprint(distill_fp, asdict(pr))

    def make(st: Stage):
        steps = max(1, len(training.x) // ds.batch_size)
        end = max(1, int(steps * pr.epochs * 0.7))
        wrapped = prune.wrap_for_pruning(float_model, pr.target_sparsity, 0, end)
        weights = distill.LossWeights(ds.cosine_weight, ds.relation_weight, 0.0, ds.temperature)
        with _epochs_saved(stages, st, fp, pr.epochs) as checkpoint:
            hist = distill.fit(wrapped, training.x, training.y, data.val.crops, training.val_y,
                               pr.epochs, ds.batch_size, ds.learning_rate * 0.1, training.loss(weights),
                               augment=training.augment, light=training.light, seed=ds.training_seed(d.seed) + 1,
                               callbacks=prune.pruning_callbacks(),
                               warmup_epochs=0, on_epoch=_epoch_events(stages.notify),
                               on_progress=_batch_events(stages.notify),
                               partners=training.partners(stages.notify, pr.epochs), checkpoint=checkpoint)
            pruned = prune.strip(wrapped)
            save_keras(pruned, st.path("pruned.keras"))
            write_json(st.path("sparsity.json"), {"target": pr.target_sparsity,
                                                  "per_layer": prune.sparsity_per_layer(pruned),
                                                  "history": hist.history})
        return pruned, hist.history

    def load(st: Stage):
        return load_keras(st.path("pruned.keras")), _read_history(st.path("sparsity.json"))

    model, history = stages.run("prune", fp, ["pruned.keras", "sparsity.json"], make, load, epochs=pr.epochs)
    return model, history, fp


def _read_history(path: Path) -> dict:
    return json.loads(path.read_text()).get("history") or {}


def _quantize(stages: Stages, settings, data, training: _TrainingSet, model, pruned: bool,
              prev_fp: str) -> tuple[str, dict]:
    """Full int8: PTQ, and QAT too when quantize.qat is set; the better on validation people
    is kept as quantize/int8.tflite. Returns the stage's fingerprint and QAT's training history
    ({} without QAT; kept in choice.json, so a skipped stage has it too)."""
    from tinyface.console import one_op_at_a_time
    from tinyface.train import quantize

    q = settings.quantize
    fp = fingerprint(prev_fp, asdict(q))

    def step(name: str, total: int | None = None) -> None:
        # each conversion says what it is before it starts; its heartbeat lines go on while the
        # converter's own C++ notes are muted (console.muted_stderr)
        stages.notify("step", {"name": name, "total": total})

    def make(st: Stage):
        rng = np.random.default_rng(settings.data.seed)
        calib = data.train.crops[rng.permutation(len(data.train.crops))[: q.calibration_images]]
        step("converting to float TFLite and to int8 (PTQ)")
        write_bytes(st.path("float.tflite"), quantize.convert_float(model))
        ptq = quantize.convert_int8(model, calib)
        candidates, qat_history = {"ptq": ptq}, {}
        # QAT saves its state as distill does: a stop in it or after it goes on from there
        with _epochs_saved(stages, st, fp, q.qat_epochs) if q.qat else contextlib.nullcontext() as checkpoint:
            if q.qat:
                step("QAT epochs", q.qat_epochs)
                candidates["qat"], qat_history = _qat(model, training, settings, calib, prune_preserving=pruned,
                                                      notify=stages.notify, checkpoint=checkpoint)
            step("PTQ or QAT: scoring on validation pairs" if q.qat else  # was said with QAT off too
                 "PTQ: scoring on validation pairs (quantize.qat off)")
            scores = {name: _val_accuracy_int8(flat, data) for name, flat in candidates.items()}
            best = max(scores, key=scores.get)  # on a tie the first, PTQ: the simpler recipe
            write_bytes(st.path("int8.tflite"), candidates[best])
            for name, flat in candidates.items():
                write_bytes(st.path(f"int8_{name}.tflite"), flat)
            write_json(st.path("choice.json"), {"chosen": best, "val_accuracy": scores,
                                                "rule": "highest accuracy on pairs of validation people; a tie "
                                                        "keeps PTQ",
                                                # QAT is bit-reproducible only so (console.one_op_at_a_time)
                                                "ops_one_at_a_time": one_op_at_a_time(),
                                                "history": qat_history})
        return qat_history

    def load(st: Stage) -> dict:
        return _read_history(st.path("choice.json"))

    return fp, stages.run("quantize", fp, ["float.tflite", "int8.tflite", "choice.json"], make, load)


def _evaluate(stages: Stages, settings, preset, data, float_model, pruned_model, quant_fp: str, data_fp: str):
    """Every stage scored with the same metrics: (BuildMetrics, fingerprint)."""
    d = settings.data
    fp = fingerprint(quant_fp, data_fp, settings.firmware.board, {k: getattr(d, k) for k in EVALUATE_ONLY})

    def make(st: Stage) -> BuildMetrics:
        from tinyface.train.stages_eval import evaluate_all

        metrics = evaluate_all(data, float_model, pruned_model, stages.out_dir / "quantize", settings, preset,
                               notify=stages.notify)
        write_json(st.path("metrics.json"), metrics.to_dict())
        return metrics

    def load(st: Stage) -> BuildMetrics:
        return BuildMetrics.from_dict(json.loads(st.path("metrics.json").read_text()))

    return stages.run("evaluate", fp, ["metrics.json"], make, load), fp


def _report(out_dir: Path, result: BuildResult, settings, preset) -> None:
    """The bundle (model.tflite + model.json), report.md / report.json / plots and the model card.

    The previous build's report files go first (report.BUILD_REPORT_FILES): a build stopped in this
    step leaves its new model with no card, never beside an old one.
    """
    from tinyface.evaluation.report import write_model_card, write_report, write_validation_report
    from tinyface.model.bundle import load_bundle

    for name in BUILD_REPORT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    result.bundle_dir = _write_bundle(out_dir, result, settings, preset)
    write_report(out_dir, result.metrics, settings, preset, stages_run=result.stages, histories=result.histories)
    write_validation_report(out_dir, result.metrics, preset, stages_run=result.stages)
    write_model_card(out_dir, result.metrics, settings, preset, load_bundle(out_dir).meta)


def _val_accuracy_int8(flat: bytes, data) -> float:
    """Accuracy on pairs of validation people at their best threshold (model selection only)."""
    from tinyface.model.embedder import Embedder
    from tinyface.train.stages_eval import validation_accuracy

    return validation_accuracy(Embedder(flat, "tflite").embed(data.val.crops), data.val.labels)


def _qat(model, training: _TrainingSet, settings, calib, prune_preserving: bool, notify,
         checkpoint=None) -> tuple[bytes, dict]:
    """The QAT candidate: (its int8 model, its training history)."""
    from tinyface.train import quantize

    qat_model, history = quantization_aware_training(model, training, settings, prune_preserving, notify,
                                                     checkpoint=checkpoint)
    notify("step", {"name": "converting to int8 (QAT)", "total": None})  # named before it starts, as every step
    return quantize.convert_int8(qat_model, calib), history


def quantization_aware_training(model, training: _TrainingSet, settings, prune_preserving: bool,
                                notify: Progress = lambda event, info: None, callbacks=(), checkpoint=None):
    """The quantize stage's QAT recipe: ``model`` wrapped for quantization-aware training and
    fine-tuned for quantize.qat_epochs at 1/20 of the distillation's learning rate, saving its
    state in ``checkpoint`` (distill.fit). Returns the trained Keras QAT model and its training
    history (benchmarks/qat_reproducible.py stops it early by ``callbacks``)."""
    from tinyface.train import distill, quantize

    ds = settings.distill
    qat_model = quantize.quantize_aware(model, prune_preserving=prune_preserving)
    weights = distill.LossWeights(ds.cosine_weight, ds.relation_weight, 0.0, ds.temperature)
    hist = distill.fit(qat_model, training.x, training.y, None, None, settings.quantize.qat_epochs,
                       ds.batch_size, ds.learning_rate * 0.05, training.loss(weights), augment=training.augment,
                       light=training.light,
                       seed=ds.training_seed(settings.data.seed) + 2, warmup_epochs=0, callbacks=callbacks,
                       on_epoch=_epoch_events(notify), on_progress=_batch_events(notify),
                       partners=training.partners(notify, settings.quantize.qat_epochs), checkpoint=checkpoint)
    return qat_model, hist.history


def _role_counts(n_people: int, val_fraction: float, test_fraction: float = 0.3) -> tuple[int, int, int]:
    """(training, validation, test) people of a folder dataset of ``n_people``, as
    tinyface.data.splits.train_val_test divides them."""
    n_test = max(1, round(n_people * test_fraction))
    n_train = n_people - n_test
    n_val = max(1, round(n_train * val_fraction))
    return n_train - n_val, n_val, n_test


def check_dataset_size(data_settings) -> None:
    """Refuse, before any work, a dataset too small for the build's splits.

    A build needs at least 2 training people, 2 validation people (pairs of different
    validation people choose the threshold and the QAT/PTQ model) with one of them having 2
    images, and 2 test people with ``data.identify_min_images`` images (identification).

    Raises:
        DataError: one line with the counts found and the counts needed.
    """
    from tinyface.data.dataset import load_dataset
    from tinyface.data.splits import train_val_test
    from tinyface.errors import DataError

    dataset = load_dataset(data_settings.data_path())
    # min_train=0: too few training people is said below, with every role's count
    split = train_val_test(dataset, data_settings.val_fraction, data_settings.seed, min_train=0)
    groups = dataset.by_identity()
    train_people = {im.identity for im in split.train}
    val_people = {im.identity for im in split.val}
    val_multi = [p for p in val_people if len(groups[p]) >= 2]
    k = data_settings.identify_min_images
    test_ok = [p for p in split.test_people if len(groups.get(p, [])) >= k]
    if len(train_people) >= 2 and len(val_people) >= 2 and val_multi and len(test_ok) >= 2:
        return
    vf = data_settings.val_fraction
    need = next(n for n in range(3, 100000) if min(_role_counts(n, vf)) >= 2)
    found = (f"{len(dataset.identities)} people split into {len(train_people)} training, {len(val_people)} "
             f"validation ({len(val_multi)} with 2+ images) and {len(split.test_people)} test people "
             f"({len(test_ok)} with {k}+ images)")
    wanted = "2 training and 2 validation people (one with 2+ images) and 2 test people with " \
             f"{k}+ images"
    if split.source == "folders":
        wanted += f": at least {need} people at data.val_fraction={vf}, about 30% of them with {k}+ images"
    raise DataError(f"{dataset.images_dir} is too small to build a model: {found}; a build needs {wanted}",
                    hint="add people or photos (or raise data.val_fraction, lower data.identify_min_images)")


def describe_dataset(root: Path) -> dict:
    """Which data a build used, in the words its report, model card and summary print:
    ``name``, ``kind`` ("lfw-view1" or "folders"), ``test`` (what the test pairs are) and
    ``root``. LFW is recognised as the splits recognise it (tinyface.data.splits)."""
    from tinyface.data import lfw
    from tinyface.data.dataset import resolve_images_dir

    root = Path(root).expanduser()
    is_lfw = (resolve_images_dir(root) != root and (root / "pairs.txt").is_file()
              and (root / lfw.PEOPLE_DEV_TRAIN).is_file())
    if is_lfw:
        return {"name": "LFW", "kind": "lfw-view1", "test": "LFW pairsDevTest", "root": str(root)}
    name = root.resolve().name or str(root)
    return {"name": name, "kind": "folders", "test": f"pairs of held-out people of {name}", "root": str(root)}


def _write_bundle(out_dir: Path, result: BuildResult, settings, preset) -> Path:
    from tinyface.model.bundle import save_bundle
    from tinyface.train.quantize import bundle_meta

    metrics, stages_run = result.metrics, result.stages
    flat = (out_dir / "quantize" / "int8.tflite").read_bytes()
    tflm = metrics.tflm
    meta = bundle_meta(
        flat, threshold=float(tflm.verification["threshold"]),
        identify_threshold=float(tflm.identification["threshold"]), arena_bytes=int(tflm.arena_bytes),
        macs=int(tflm.macs), name=f"tinyface-{preset.name}", preset=preset.name, crop_padding=settings.data.padding,
        kernels=settings.firmware.kernels,
        extra={**_extra_fields(settings, metrics), STAGES_KEY: _stage_fingerprints(out_dir, stages_run),
               SPLIT_KEY: split_record(settings.data, result.people, quick=bool(metrics.smoke_test))},
    )
    save_bundle(out_dir, flat, meta)
    return out_dir


def _stage_fingerprints(out_dir: Path, stages_run: list[StageInfo]) -> dict[str, str]:
    """model.json's ``extra.stages``: {stage folder: fingerprint} of every stage this build made or
    kept, so that its folder's models are described by this model.json only until a later build
    redoes the stage (bundle.model_file_meta checks it)."""
    return {s.name: s.fingerprint for s in stages_run if (out_dir / s.name / STAGE_RECORD).is_file()}


def _extra_fields(settings, metrics: BuildMetrics) -> dict:
    """model.json's ``extra``: the student, the test accuracy and, when it distilled from extra
    faces, their folders as ``extra.dirs`` names them (so a comparison on one of those sets can
    refuse it: benchmarks/compare_runs.py)."""
    st = settings.student
    fields = {"arch": st.arch, "width": st.width, **({"repeats": st.repeats} if "repeats" in st.key() else {})}
    if settings.extra.dirs:
        fields["extra_faces"] = [str(d) for d in settings.extra.dirs]
    return {**fields, **_accuracy_fields(metrics)}


def _accuracy_fields(metrics: BuildMetrics) -> dict:
    """model.json's record of the test accuracy: which data it is on, and whether the model is
    a `--quick` smoke test (whose accuracy says nothing about a real model)."""
    dataset = metrics.dataset_or_lfw
    accuracy = metrics.tflm.verification["accuracy"]
    fields = {"test_data": dataset["test"], "test_accuracy": accuracy, "smoke_test": bool(metrics.smoke_test)}
    if dataset["kind"] == "lfw-view1":
        fields["lfw_pairs_dev_test_accuracy"] = accuracy
    return fields
