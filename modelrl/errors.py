"""Errors a user can cause. Each carries one clear sentence; the CLI prints it and exits 2."""

import numbers


class ModelRLError(Exception):
    """Base class of every error caused by input the user can fix."""


class UnknownEnvError(ModelRLError):
    pass


class UnknownAgentError(ModelRLError):
    pass


class ConfigError(ModelRLError):
    pass


def require_at_least(name: str, value: int | None, minimum: int) -> None:
    """ConfigError unless `value` (None: not given) is at least `minimum`; `name` is how the user wrote it."""
    if value is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


MAX_SEED = 2**32 - 1  # what NumPy's legacy seeding, Gymnasium and torch all accept, with room for offsets


def require_seed(name: str, seed) -> None:
    """ConfigError unless `seed` is a whole number in [0, MAX_SEED]."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be a whole number from 0 to {MAX_SEED} (2**32 - 1), got {seed!r}")


class IncompatibleEnvError(ModelRLError):
    """The environment's spaces do not suit the agent."""


class CheckpointError(ModelRLError):
    pass


class RunDirError(ModelRLError):
    pass


class TrainingDivergedError(ModelRLError):
    """Training produced NaN or infinite values."""
