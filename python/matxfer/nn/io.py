"""Save and load models as ``model.json`` (class name, init arguments, weights sha256) beside
``weights.safetensors``.

The architecture is plain JSON and the weights are a safetensors file, so a saved model is
inspectable and loads without unpickling anything: the class must be one of
``matxfer.nn.MODEL_REGISTRY`` (or passed in ``registry=``), the weights' sha256 must match the one
recorded in ``model.json``, and the tensor names and shapes must fit the rebuilt module.
Directories written by older versions (``weights.pt``, a pickle-based format) are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Type

from torch import nn

from .. import _safeio
from ..exceptions import ModelFormatError
from .models import MODEL_REGISTRY

__all__ = ["save_model", "load_model", "MODEL_FORMAT"]

_CONFIG = "model.json"
_WEIGHTS = "weights.safetensors"
MODEL_FORMAT = "matxfer.nn-model/1"


def save_model(model: nn.Module, directory: str | os.PathLike, metadata: Optional[dict] = None) -> str:
    """Write ``model.json`` and ``weights.safetensors`` into ``directory`` (created if needed); returns the directory."""
    if not hasattr(model, "init_args"):
        raise TypeError(f"{type(model).__name__} has no init_args; only matxfer.nn models can be saved this way")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = _safeio.write_safetensors_torch(directory / _WEIGHTS, dict(model.state_dict()))
    config = {
        "format": MODEL_FORMAT,
        "class": type(model).__name__,
        "init_args": model.init_args,
        "metadata": metadata or {},
        "weights": {"file": _WEIGHTS, "sha256": digest},
    }
    _safeio.write_json(directory / _CONFIG, config)
    return str(directory)


def load_model(
    directory: str | os.PathLike, map_location="cpu", registry: Optional[Dict[str, Type[nn.Module]]] = None
) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (in eval mode); refuses anything it cannot verify."""
    directory = Path(directory)
    config_path = directory / _CONFIG
    if not config_path.exists() and (directory / "weights.pt").exists():
        raise ModelFormatError(directory / "weights.pt", "pickle-based weights (older matxfer) are not loaded; re-save with save_model")
    config = _safeio.read_json(config_path, "model config")
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ModelFormatError(config_path, f"not a {MODEL_FORMAT} file (format {config.get('format') if isinstance(config, dict) else None!r})")
    classes = {**MODEL_REGISTRY, **(registry or {})}
    class_name = config.get("class")
    # A non-string "class" (e.g. a JSON list) would make dict.get raise TypeError (unhashable).
    cls = classes.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ModelFormatError(config_path, f"unknown model class {config.get('class')!r}; pass it in registry=")
    weights = config.get("weights") or {}
    if weights.get("file") != _WEIGHTS:
        raise ModelFormatError(config_path, "weights entry must name weights.safetensors")
    state = _safeio.read_safetensors_torch(directory / _WEIGHTS, weights.get("sha256"), device=str(map_location))
    try:
        model = cls(**config["init_args"])
        model.load_state_dict(state)
    except (TypeError, RuntimeError, ValueError, KeyError) as err:
        raise ModelFormatError(directory / _WEIGHTS, f"does not fit {config.get('class')}({config.get('init_args')}): {err}") from None
    return model.to(map_location).eval()
