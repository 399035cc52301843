"""Save and load fitted transfer strategies without pickle.

A saved strategy is a directory:

- ``strategy.json``: the strategy's attributes as a JSON tree (class names of strategies and
  networks, init arguments, training settings), the sha256 of every other file;
- ``tensors.safetensors``: every network weight and numpy array the tree refers to;
- ``head_<k>.skops``: scikit-learn heads (ridge pipelines, gradient boosting, any regressor),
  written with skops and read back only when every type they contain is on the trusted list
  (:data:`TRUSTED_TYPES` plus what the caller passes in ``trusted=``).

Loading rebuilds objects only from classes matxfer knows (its strategies, ``matxfer.nn`` models,
``TrainConfig``); a file whose hash differs from the recorded one, a pickle, an unknown class or a
head with an untrusted type is refused with :class:`matxfer.ModelFormatError`. Predictions of the
loaded strategy are bit-identical to the saved one's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Type

import numpy as np
import torch
from torch import nn

from .. import _safeio
from ..exceptions import ModelFormatError
from ..nn import TrainConfig
from ..nn.models import MODEL_REGISTRY
from .base import TransferStrategy

__all__ = ["save_strategy", "load_strategy", "TRUSTED_TYPES", "STRATEGY_FORMAT"]

STRATEGY_FORMAT = "matxfer.strategy/1"
_TREE, _TENSORS = "strategy.json", "tensors.safetensors"

#: Types skops does not trust by default that matxfer's own heads contain. Everything else must be
#: passed explicitly in ``load_strategy(..., trusted=[...])``.
TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


def _strategy_classes() -> Dict[str, Type[TransferStrategy]]:
    from . import STRATEGIES

    return {cls.__name__: cls for cls in STRATEGIES.values()}


class _Encoder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.heads: List[Dict[str, str]] = []

    def __call__(self, value: Any, arrays: Dict[str, Any], prefix: str):
        if isinstance(value, TransferStrategy):
            cls = type(value).__name__
            if cls not in _strategy_classes():
                raise TypeError(f"{prefix}: {cls} is not a matxfer strategy")
            return {"__strategy__": cls, "state": _safeio.encode_tree(value.__dict__, arrays, prefix, self)}
        if isinstance(value, nn.Module):
            cls = type(value).__name__
            if MODEL_REGISTRY.get(cls) is not type(value) or not hasattr(value, "init_args"):
                raise TypeError(f"{prefix}: only matxfer.nn models can be saved, not {cls}")
            frozen = [n for n, p in value.named_parameters() if not p.requires_grad]
            state = {k: v for k, v in value.state_dict().items()}
            return {"__module__": cls, "init_args": _safeio.encode_tree(value.init_args, arrays, prefix + ".args", self),
                    "state": _safeio.encode_tree(state, arrays, prefix + ".state", self), "frozen": frozen,
                    "training": bool(value.training)}
        if isinstance(value, TrainConfig):
            fields = dataclasses.asdict(value)
            fields["device"] = None if value.device is None else str(value.device)
            return {"__trainconfig__": _safeio.encode_tree(fields, arrays, prefix, self)}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if hasattr(value, "fit") and hasattr(value, "get_params") and type(value).__module__.startswith("sklearn"):
            import skops.io as sio

            k = len(self.heads)
            filename = f"head_{k}.skops"
            data = sio.dumps(value)
            (self.directory / filename).write_bytes(data)
            self.heads.append({"file": filename, "sha256": _safeio.sha256_bytes(data)})
            return {"__skops__": k}
        return None


class _Decoder:
    def __init__(self, directory: Path, heads: Sequence[Dict[str, str]], trusted: Sequence[str]) -> None:
        self.directory = directory
        self.heads = list(heads)
        self.trusted = list(TRUSTED_TYPES) + list(trusted)

    def __call__(self, node: dict, arrays: Dict[str, Any]):
        if "__strategy__" in node:
            cls = _strategy_classes().get(node["__strategy__"])
            if cls is None:
                raise ValueError(f"unknown strategy class {node['__strategy__']!r}")
            obj = cls.__new__(cls)
            obj.__dict__.update(_safeio.decode_tree(node["state"], arrays, self))
            return True, obj
        if "__module__" in node:
            model_cls = MODEL_REGISTRY.get(node["__module__"])
            if model_cls is None:
                raise ValueError(f"unknown model class {node['__module__']!r}")
            model = model_cls(**_safeio.decode_tree(node["init_args"], arrays, self))
            model.load_state_dict(_safeio.decode_tree(node["state"], arrays, self))
            model.train(bool(node.get("training", False)))
            frozen = set(node.get("frozen", []))
            for name, p in model.named_parameters():
                p.requires_grad_(name not in frozen)
            return True, model
        if "__trainconfig__" in node:
            fields = _safeio.decode_tree(node["__trainconfig__"], arrays, self)
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            return True, TrainConfig(**{k: v for k, v in fields.items() if k in known})
        if "__device__" in node:
            return True, torch.device(node["__device__"])
        if "__skops__" in node:
            import skops.io as sio

            entry = self.heads[int(node["__skops__"])]
            path = self.directory / entry["file"]
            if not path.is_file():
                raise ModelFormatError(path, "head file is missing")
            data = path.read_bytes()
            if _safeio.sha256_bytes(data) != entry["sha256"]:
                raise ModelFormatError(path, "sha256 does not match the recorded one (tampered or truncated)")
            try:
                untrusted = sio.get_untrusted_types(data=data)
            except Exception as err:  # skops raises assorted errors on a damaged archive
                raise ModelFormatError(path, f"not a valid skops file ({err})") from None
            refused = [t for t in untrusted if t not in self.trusted]
            if refused:
                raise ModelFormatError(path, f"contains types that are not trusted: {refused}; pass trusted=[...] if you trust them")
            return True, sio.loads(data, trusted=[t for t in untrusted])
        return False, None


def save_strategy(strategy: TransferStrategy, directory: str | os.PathLike, include_source_data: bool = False) -> Path:
    """Write a (pretrained and/or adapted) strategy into ``directory``; returns the directory.

    ``include_source_data=False`` drops the source rows kept by ``use_source`` (they are not needed
    to predict, and can be large); ``MultiTask``/``LatentVariable`` then need them passed again
    before another ``adapt``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("head_*.skops"):
        old.unlink()
    encoder = _Encoder(directory)
    arrays: Dict[str, Any] = {}
    tree = _safeio.encode_tree(strategy if include_source_data else _without_source(strategy), arrays, "s", encoder)
    tensors = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
    digest = _safeio.write_safetensors_torch(directory / _TENSORS, tensors)
    import matxfer

    _safeio.write_json(directory / _TREE, {
        "format": STRATEGY_FORMAT, "class": type(strategy).__name__, "matxfer_version": matxfer.__version__,
        "tree": json.dumps(tree, sort_keys=True), "tensors": {"file": _TENSORS, "sha256": digest}, "heads": encoder.heads,
    })
    return directory


def _without_source(strategy: TransferStrategy) -> TransferStrategy:
    """A shallow copy chain with ``_X_source``/``_y_source`` removed (members of ensembles too)."""
    import copy

    clone = copy.copy(strategy)
    clone.__dict__ = dict(strategy.__dict__)
    clone._X_source = None
    clone._y_source = None
    if "members" in clone.__dict__:  # an Ensemble
        clone.__dict__["members"] = [_without_source(m) for m in clone.__dict__["members"]]
    if isinstance(clone.target_, list):
        clone.target_ = [_without_source(m) if isinstance(m, TransferStrategy) else m for m in clone.target_]
    return clone


def load_strategy(directory: str | os.PathLike, trusted: Sequence[str] = ()) -> TransferStrategy:
    """Rebuild a strategy written by :func:`save_strategy`, verifying every file first."""
    directory = Path(directory)
    meta = _safeio.read_json(directory / _TREE, "strategy file")
    if not isinstance(meta, dict) or meta.get("format") != STRATEGY_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFormatError(directory / _TREE, f"format {found!r} is not {STRATEGY_FORMAT!r} (incompatible or not a strategy)")
    if meta.get("class") not in _strategy_classes():
        raise ModelFormatError(directory / _TREE, f"unknown strategy class {meta.get('class')!r}")
    tensors_entry = meta.get("tensors") or {}
    if tensors_entry.get("file") != _TENSORS:
        raise ModelFormatError(directory / _TREE, "tensors entry must name tensors.safetensors")
    arrays: Dict[str, Any] = _safeio.read_safetensors_torch(directory / _TENSORS, tensors_entry.get("sha256"))
    decoder = _Decoder(directory, meta.get("heads") or [], trusted)
    try:
        obj = _safeio.decode_tree(json.loads(meta["tree"]), arrays, decoder)
    except ModelFormatError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise ModelFormatError(directory / _TREE, f"cannot rebuild the strategy ({err})") from None
    if not isinstance(obj, TransferStrategy):
        raise ModelFormatError(directory / _TREE, "the file does not describe a strategy")
    return obj
