"""The project's documented error types: every bad input ends in one of these, with a message a person can act on."""


class FacemacError(Exception):
    """Base class: anything facemac refuses on purpose."""


class ConfigError(FacemacError, ValueError):
    """A config value is missing, unknown or inconsistent; the message names the key to set."""


class DataError(FacemacError, ValueError):
    """A file or dataset on disk does not have the expected layout; the message names the file."""


class CheckpointError(FacemacError, ValueError):
    """A checkpoint is missing, truncated, untrusted or does not fit the data it is used with."""


class TrainingDivergedError(FacemacError, FloatingPointError):
    """The loss or the weights became NaN/inf; the message names the step, and the last good checkpoint is kept."""


class RunLockedError(FacemacError):
    """Another live process is writing into the same output folder; the message names the folder and its pid."""
