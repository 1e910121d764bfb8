"""The project's documented error types: every bad input ends in one of these, with a message a person can act on."""


class FacemacError(Exception):
    """Base class: anything facemac refuses on purpose."""


class ConfigError(FacemacError, ValueError):
    """A config value is missing, unknown or inconsistent; the message names the key to set."""


class DataError(FacemacError, ValueError):
    """A file or dataset on disk does not have the expected layout; the message names the file."""


class CheckpointError(FacemacError, ValueError):
    """A checkpoint is missing, truncated, untrusted or does not fit the data it is used with."""
