"""Exception classes shared across the SDK.

Every error the SDK raises on purpose derives from :class:`EngramError`, so an
application can catch them all, and the CLI prints them as one clear line.
"""


class EngramError(Exception):
    """Base class of every error the SDK raises on purpose."""


class ConfigError(EngramError, ValueError):
    """A configuration value is invalid; the message names it and what was expected."""


class MissingDependencyError(EngramError, ImportError):
    """Something the SDK needs is not installed; the message says what to install."""


class InputError(EngramError, ValueError):
    """An argument or input file is not what was expected."""
