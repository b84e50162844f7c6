"""The errors every layer shares, torch-free, so that the CLI, the worker and the UI catch them by
class: the engine raises them, the job layer and the UI only need this module to recognise them.

A `RunError` is a fault of the run itself (its config, its data, its checkpoint): retrying on
another machine cannot help, and its message says what to change.
"""

from __future__ import annotations


class TrainersError(Exception):
    """Base of every error this project raises on purpose (with a message meant for people)."""


class RunError(TrainersError):
    """A fault of the run, not of the machine: not retried; the message says what to do."""


class ConfigError(RunError, ValueError):
    """A config value that cannot describe a run. The message says which field and why."""


class DataError(RunError):
    """A dataset that is missing, corrupt or of the wrong shape. The message says what to do."""


class CheckpointError(RunError, RuntimeError):
    """A checkpoint that cannot be read or belongs to another run."""


class PackingError(TrainersError, ValueError):
    """These configs cannot be trained as one packed network; the message says why."""
