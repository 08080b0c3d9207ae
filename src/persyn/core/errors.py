"""Exceptions persyn raises for bad input. Each message names the file, line or config field."""


class PersynError(Exception):
    """Base class of every error persyn raises on purpose (the CLI prints these without a
    traceback)."""


class ConfigError(PersynError):
    """The run configuration is invalid; the message names the field path (e.g. ``alpha``)."""


class InputError(PersynError):
    """A prompt file or other input is malformed; the message names the file and line."""


class MissingAssetError(PersynError):
    """A packaged model or prompt set is not installed; the message says what to install."""


class BatchesInFlight(PersynError):
    """Batches were submitted (``batch.wait: false``) and are still running: the run stops here,
    and running it again collects them. Not a failure: the CLI prints it and exits 0."""


class BatchFilesNeeded(BatchesInFlight):
    """A teacher that answers through batch files (``batch.mode: files``) has requests to answer
    (or ``persyn batch export`` wrote them): the run stops here until ``persyn batch import``
    stores the results. A status like ``BatchesInFlight``."""
