"""One command-line contract for every entry point of the project.

- Everything is validated before any work: flags, values, profile, device, data and weights paths, and that
  the outputs can be written. Nothing is written before validation has passed.
- An error the user can fix (:class:`~common.errors.UserError`: a bad flag or value, missing or corrupt
  data, missing weights offline, an unwritable output, a corrupt record) is ONE line on stderr that names
  the fix, and exit code 2.
- Ctrl-C is one line and exit code 130; what was computed is kept (checkpoints, logs), and rerunning the same
  command resumes.
- Subnormal floats are flushed to zero from the start (:func:`common.config.flush_denormals`), so a long run
  on the CPU does not slow down as weight decay drives values towards zero.

Use it as::

    def _main(argv):
        parser = Parser(prog="python -m pkg.job", description="...")
        add_standard_args(parser)
        args = parser.parse_args(argv)
        settings = standard_settings(args)
        ...

    def main(argv=None) -> int:
        return run_cli(_main, argv, prog="python -m pkg.job")

    if __name__ == "__main__":
        exit_process(main())
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import DATA_ENV, PROFILE_ENV, PROFILES, Profile, flush_denormals, get_device, get_profile
from .errors import UsageError, UserError


def one_line(message: object) -> str:
    """``message`` with all white space (newlines included) folded into single spaces."""
    return " ".join(str(message).split())


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` (one line) instead of printing usage."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """argparse ``type`` for a count >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_standard_args(parser: argparse.ArgumentParser, *, profile: bool = True, device: bool = True,
                      data_root: bool = True, threads: bool = True, progress: bool = True) -> None:
    """The flags every entry point shares, with the same names and meanings everywhere."""
    if profile:
        parser.add_argument("--profile", default=None,
                            help=f"{' or '.join(PROFILES)} (default ${PROFILE_ENV}, else quick)")
    if device:
        parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    if data_root:
        parser.add_argument("--data-root", default=None,
                            help=f"the datasets folder: MNIST/raw, cifar-10-batches-py, ... (default ${DATA_ENV})")
    if threads:
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


@dataclass(frozen=True)
class Settings:
    """The standard settings of a run, resolved once at the entry point and passed down."""

    profile: Profile
    device: Any  # torch.device
    data_root: Path | None
    threads: int | None
    progress: bool


def resolve_data_root(value: str | Path | None) -> Path | None:
    """``value`` or ``$DLHW_DATA`` as an absolute path (``None`` when neither is set). A given folder that
    does not exist is a :class:`UsageError`."""
    raw = value if value not in (None, "") else os.environ.get(DATA_ENV) or None
    if raw is None:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        source = "--data-root" if value not in (None, "") else f"${DATA_ENV}"
        raise UsageError(f"{source} {raw} is not a folder; point it at the folder that holds the datasets "
                         f"(e.g. ../shared/data).")
    return path


def standard_settings(args: argparse.Namespace) -> Settings:
    """Validate the standard flags (see :func:`add_standard_args`); raise :class:`UserError`."""
    profile = get_profile(getattr(args, "profile", None))
    device = get_device(getattr(args, "device", None))  # ConfigError names the fix
    threads = getattr(args, "threads", None)
    if threads is not None:
        check_positive("--threads", threads)
    data_root = resolve_data_root(getattr(args, "data_root", None))
    progress = progress_enabled(False if getattr(args, "no_progress", False) else None)
    return Settings(profile, device, data_root, threads, progress)


def check_positive(flag: str, value: float | None, minimum: float = 1) -> None:
    """``value`` must be >= ``minimum``."""
    if value is None or value < minimum:
        raise UsageError(f"{flag} must be at least {minimum}, got {value}.")


def parse_widths(flag: str, text: str) -> tuple[int, ...]:
    """Layer widths given as a comma list (``"1000,1000,1000"``): positive integers, at least one."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated integers like 500,500, got {text!r}.") from None
    if not widths or min(widths) < 1:
        raise UsageError(f"{flag} widths must be positive integers, got {text!r}.")
    return widths


def check_choice(flag: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise UsageError(f"{flag} {value!r} is not one of {', '.join(choices)}.")


def check_writable(path: str | Path, flag: str = "--out") -> Path:
    """Raise :class:`UsageError` unless ``path`` (a file or folder to be written, maybe not yet existing)
    could be created. Creates nothing that stays: the nearest existing folder is probed with a temporary file
    (permission bits alone say nothing for root)."""
    path = Path(path).expanduser()
    target = path.absolute()
    probe = target
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe != target and not probe.is_dir():
        raise UsageError(f"{flag} {path} cannot be created: {probe} is a file, not a folder; choose another "
                         f"path.")
    if probe == target and not target.is_dir():
        probe = target.parent  # an existing file that will be replaced
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise UsageError(f"{flag} {path} is not writable ({err.strerror or err}); choose a writable folder.") \
            from None
    return path


def check_out_file(path: str | Path, example: str, flag: str = "--out") -> Path:
    """:func:`check_writable` for an output that must be a file: an existing folder is refused too, with a file
    name such as ``example`` suggested."""
    path = check_writable(path, flag)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name such as {path / example}.")
    return path


def command_line(prog: str, argv: Iterable[str] | None = None) -> str:
    """The command that started a run, as a line to paste into a shell: ``prog`` and ``argv`` (default
    ``sys.argv[1:]``), each argument quoted where the shell needs it. Stored in run records as ``"command"``."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return " ".join([prog, *(shlex.quote(a) for a in args)])


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show progress bars: ``progress`` when given, else only on an interactive terminal outside
    CI (in notebooks and logs a bar would be a frozen line)."""
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty() and not os.environ.get("CI")


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None, *,
            prog: str) -> int:
    """Run ``main(argv)`` under the contract: :class:`UserError` -> one line on stderr, exit 2;
    Ctrl-C (or SIGTERM) -> one line, exit 130. Returns the exit code. Subnormal floats are flushed to zero
    while ``main`` runs (:func:`common.config.flush_denormals`: Adam with weight decay slows several-fold
    without)."""
    flush_denormals()
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupt)
    handlers = [h for h in (logging.lastResort, *logging.getLogger().handlers) if h is not None]
    for handler in handlers:
        handler.addFilter(_INTERRUPT_FALLOUT)
    try:
        code = main(argv)
    except UserError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; what was computed is kept, rerun the same command to resume.",
              file=sys.stderr)
        return 130
    finally:
        for handler in handlers:
            handler.removeFilter(_INTERRUPT_FALLOUT)
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        flush_denormals(False)  # as it was for the caller (a test calling main in-process)
    return int(code or 0)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def caused_by_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a :class:`KeyboardInterrupt` or was raised while one was being handled (its
    ``__context__`` / ``__cause__`` chain holds one)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


class _InterruptFallout(logging.Filter):
    """Drops a log record whose exception was caused by the interrupt itself. Ctrl-C can land inside a
    library's database call: SQLAlchemy then fails to close the half-read cursor and logs "Error closing
    cursor" with two tracebacks (a CI run saw 29 such lines above the job's one line). The interrupt is
    reported in that one line; a failure that merely follows from it is not news. Other records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and caused_by_interrupt(record.exc_info[1]))


_INTERRUPT_FALLOUT = _InterruptFallout()


def exit_process(code: int) -> None:
    """End an entry point with ``code`` (``sys.exit(main())`` for the contract). After an interrupt (130) a
    library may have left a non-daemon thread behind: Optuna's heartbeat thread, for one, is started by a
    context manager that a Ctrl-C landing inside ``Thread.start`` never exits, and it then records heartbeats
    forever, so the interpreter would wait for it at shutdown and the job would never end. Everything the job
    computed is already on disk (atomic writes, committed storage), so the process then ends at once with
    ``os._exit`` after flushing its streams."""
    import threading

    leftover = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if code == 130 and leftover:
        end_now(code)
    sys.exit(code)


def end_now(code: int) -> None:
    """Flush stdout and stderr, then end the process with ``code`` at once (``os._exit``): no exit handlers,
    no waiting for threads. Only for a process whose work is already on disk."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux ``PR_SET_PDEATHSIG``);
    elsewhere a no-op. Call it first thing in a worker process. If the parent is already gone (re-parented
    to init) the worker exits at once."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() != parent or parent == 1:
        os._exit(1)
