"""The error hierarchy. The CLI turns each class into one line on stderr and its exit code.

Raise these for anything a user can cause or fix (bad input, missing data, no board);
everything else is a bug and reaches the CLI as an internal error.
"""


class TinyfaceError(Exception):
    """Base class of user-facing errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    label = "an error"  # in the exit-code list of `tinyface --help`

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint
        # more keys of the --json failure object, after its "error", "kind" and "exit_code": what
        # the work left: its result as far as it got ("result": bench cut short, an evaluation whose
        # --out report failed)
        self.json_fields: dict = {}

    def one_line(self) -> str:
        text = str(self)
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split())


class ConfigError(TinyfaceError):
    """tinyface.toml or a command-line override is invalid."""

    exit_code = 3
    label = "settings"


class DataError(TinyfaceError):
    """The dataset is missing, unreadable or unusable."""

    exit_code = 4
    label = "data"


class DownloadError(DataError):
    """A download failed or its checksum did not match."""

    exit_code = 5
    label = "download"


class NoFaceError(DataError):
    """Images with no usable face (none found, or unreadable) where every image must be a face:
    a gallery is never enrolled from them (`flash --enroll`, `enroll`), nor is anyone identified
    in them (`identify`: without --skip-bad, or with no photo left); and a dataset in which no
    image has a face is not evaluated (`evaluate`)."""

    exit_code = 15
    label = "no face"


class ModelError(TinyfaceError):
    """A model file is missing, corrupt or not what the command needs."""

    exit_code = 6
    label = "model"


class DeviceError(TinyfaceError):
    """A serial port, board or protocol problem."""

    exit_code = 7
    label = "port or board"


class ProtocolError(DeviceError):
    """The peer spoke the protocol wrongly (bad frame, version or model mismatch)."""

    exit_code = 8
    label = "protocol"


class GalleryError(TinyfaceError):
    """The board's gallery cannot do what was asked (no such person, nobody enrolled)."""

    exit_code = 12  # 11 is ProjectDirError (flash --project-dir)
    label = "gallery"


class GalleryFullError(GalleryError):
    """The board's gallery holds as many people as it can; a new person does not fit (`enroll`),
    or `flash --enroll` names more people than it holds."""

    exit_code = 13
    label = "gallery full"


class ToolchainError(TinyfaceError):
    """PlatformIO, a compiler or a platform package is missing or failed."""

    exit_code = 9
    label = "toolchain"


class BudgetError(TinyfaceError):
    """The model does not fit the board's flash or SRAM."""

    exit_code = 10
    label = "too big for the board"


class ProjectDirError(TinyfaceError):
    """A folder tinyface would generate into holds files tinyface did not generate."""

    exit_code = 11
    label = "project folder"


class OutputError(TinyfaceError):
    """An output folder or file (--out, --dest, an artifact) cannot be created or written."""

    exit_code = 14
    label = "output"


class Interrupted(TinyfaceError):
    """Ctrl-C in the middle of work that had to say what it left behind (an enrollment cut short)."""

    exit_code = 130
    label = "interrupted"


EXIT_USAGE = 2  # a bad option or argument (click's convention)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # SIGTERM, ended as Ctrl-C ends a command (128 + 15, as a shell reports it)
EXIT_INTERNAL = 70  # a bug in tinyface (EX_SOFTWARE): never a user error


def exit_code_list() -> str:
    """Every exit code in a few words, for `tinyface --help` (docs/cli.md has the full table)."""
    classes = [c for c in globals().values() if isinstance(c, type) and issubclass(c, TinyfaceError)]
    codes = {c.exit_code: c.label for c in classes if c not in (TinyfaceError, Interrupted)}
    codes.update({0: "done", EXIT_USAGE: "bad option", EXIT_INTERNAL: "a bug in tinyface",
                  EXIT_INTERRUPTED: "Ctrl-C", EXIT_TERMINATED: "SIGTERM"})
    return ", ".join(f"{code} {label}" for code, label in sorted(codes.items()))
