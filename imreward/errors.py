"""Errors users act on; kept free of heavy imports so the CLI can catch them cheaply."""


class CheckpointError(ValueError):
    """A checkpoint does not match the model: missing, unexpected or misshapen tensors."""


class ModelDownloadError(RuntimeError):
    """Model files could not be fetched from the hub or found in its cache."""


class ImageLoadError(ValueError):
    """An image could not be read: missing, empty, corrupt, or too large to decode safely."""


class UnknownScorerError(KeyError):
    """A scorer name that is no registered scorer, checkpoint, ``module:function`` factory or hub repo."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class ScorerOptionError(TypeError):
    """An option (``--med-config``, ``--dtype``, ...) the chosen scorer does not take."""


class JudgeAnswerError(ValueError):
    """A judge's answer from which no score can be read; ``raw`` holds the answer as received."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(f"{message}; the judge answered: {raw[:2000]!r}" if raw else message)
        self.raw = raw


class JudgeRequestError(RuntimeError):
    """A judge endpoint that kept failing (HTTP errors, timeouts) after its retries."""
