"""Errors a user can act on: each names the problem and the fix.

The CLI prints `str(error)` as one line and exits non-zero; BRAZE_DEBUG=1 shows the traceback.
"""


class BrazeError(Exception):
    """Base class for every error braze reports to a user."""


class ModelNotFoundError(BrazeError):
    """A model path or name that does not exist."""


class UnsupportedArchitectureError(BrazeError):
    """A checkpoint whose architecture braze has no model definition for."""


class WeightFileError(BrazeError):
    """A weight file that is missing, truncated or corrupt (names the file)."""


class MissingTensorError(BrazeError):
    """A tensor the model needs that the checkpoint does not have (names the tensor)."""


class ShapeMismatchError(BrazeError):
    """A tensor whose shape differs from what the config implies (names both shapes)."""


class PromptTooLongError(BrazeError):
    """A prompt that does not fit the context window (names both lengths)."""


class InvalidArgumentError(BrazeError):
    """A bad option value (dtype, device, sampling parameter)."""


class GraphVerificationError(BrazeError):
    """An IR that breaks an invariant; raised by the verifiers between passes."""


class CompilationError(BrazeError):
    """The system C++ compiler rejected generated code (shows the compiler's message)."""
