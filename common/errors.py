"""The errors a user can fix. Every entry point reports them as one line on stderr and exits 2
(see :mod:`common.cli`); anything else is a bug and keeps its traceback."""
from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix: a flag, a value, a missing or corrupt file, missing weights.

    The message is one sentence that names the fix (the flag, variable or folder to change)."""


class UsageError(UserError, ValueError):
    """A flag or argument value the program cannot use."""


class ConfigError(UserError, ValueError):
    """An environment variable or setting has a value the project cannot use."""


class DataError(UserError, RuntimeError):
    """Base class of every data problem the loaders report."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The files of a dataset are not where the project looked."""


class CorruptDataError(DataError):
    """A data file exists but cannot be read as what it claims to be (truncated, wrong format)."""


class ModelNotFoundError(UserError, FileNotFoundError):
    """Pretrained weights (or a tokenizer, a processor) are neither on disk nor allowed to be downloaded."""


class CheckpointError(UserError):
    """A checkpoint or record file cannot be read safely: corrupt, truncated, or holding code objects."""
