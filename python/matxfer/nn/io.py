"""Save and load models as ``model.json`` (class name + init arguments) beside ``weights.pt`` (state dict).

Keeping the architecture as plain JSON means a saved model is inspectable and loads without
unpickling arbitrary code (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Type

import torch
from torch import nn

from .models import MODEL_REGISTRY

__all__ = ["save_model", "load_model"]

_CONFIG = "model.json"
_WEIGHTS = "weights.pt"


def save_model(model: nn.Module, directory: "str | os.PathLike", metadata: Optional[dict] = None) -> str:
    """Write ``model.json`` and ``weights.pt`` into ``directory`` (created if needed); returns the directory."""
    if not hasattr(model, "init_args"):
        raise TypeError(f"{type(model).__name__} has no init_args; only matxfer.nn models can be saved this way")
    os.makedirs(directory, exist_ok=True)
    config = {"class": type(model).__name__, "init_args": model.init_args, "metadata": metadata or {}}
    with open(os.path.join(directory, _CONFIG), "w") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(directory, _WEIGHTS))
    return str(directory)


def load_model(
    directory: "str | os.PathLike", map_location="cpu", registry: Optional[Dict[str, Type[nn.Module]]] = None
) -> nn.Module:
    """Rebuild a model saved by :func:`save_model` (in eval mode)."""
    with open(os.path.join(directory, _CONFIG)) as fh:
        config = json.load(fh)
    classes = {**MODEL_REGISTRY, **(registry or {})}
    try:
        cls = classes[config["class"]]
    except KeyError:
        raise ValueError(f"unknown model class {config['class']!r}; pass it in registry=") from None
    model = cls(**config["init_args"])
    state = torch.load(os.path.join(directory, _WEIGHTS), map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    return model.eval()
