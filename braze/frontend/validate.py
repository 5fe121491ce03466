"""Checks shared by every frontend: the tensors a config implies exist with the right shapes."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from braze.errors import MissingTensorError, ShapeMismatchError
from braze.models.config import ModelConfig, expected_weight_shapes


def validate_weights(
    config: ModelConfig, weights: Mapping[str, torch.Tensor], searched: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Return only the tensors the model needs, after checking names and shapes.

    Extra tensors (rotary inv_freq, an lm_head next to tied embeddings) are dropped, so later
    stages never see names they do not know.
    """
    expected = expected_weight_shapes(config)
    missing = [name for name in expected if name not in weights]
    if missing:
        files = ", ".join(str(f) for f in searched)
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MissingTensorError(
            f"checkpoint has no tensor {missing[0]!r}{more}, which a {config.architecture} with "
            f"this config.json needs; searched: {files}"
        )
    for name, shape in expected.items():
        actual = tuple(weights[name].shape)
        if actual != shape:
            raise ShapeMismatchError(
                f"tensor {name!r} has shape {list(actual)} but the config implies {list(shape)}; "
                "the weights do not match the config (wrong config.json or a different model?)"
            )
    return {name: weights[name] for name in expected}
