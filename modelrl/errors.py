"""Errors a user can cause. Each carries one clear sentence; the CLI prints it and exits 2."""


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


class IncompatibleEnvError(ModelRLError):
    """The environment's spaces do not suit the agent."""


class CheckpointError(ModelRLError):
    pass


class RunDirError(ModelRLError):
    pass


class TrainingDivergedError(ModelRLError):
    """Training produced NaN or infinite values."""
