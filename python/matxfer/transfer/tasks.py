"""Classification plumbing shared by the strategies: label encoding, class weights, logits to
probabilities, networks with a new output layer, and the classification metrics."""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..nn import MLP

__all__ = ["encode_labels", "logits_to_proba", "with_new_head", "classification_metrics", "CLASSIFICATION_METRICS"]

CLASSIFICATION_METRICS = ("roc_auc", "balanced_accuracy", "f1", "log_loss", "brier", "accuracy")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def encode_labels(
    y, n: int, class_weight: Optional[Mapping[str, float]] = None, balanced: bool = False
) -> Tuple[np.ndarray, List[Any], Optional[np.ndarray]]:
    """Labels of any type -> (class index as float64 [n], sorted class labels, per-row weights or None).

    Raises ValueError naming the first bad row (missing label) and when fewer than two classes occur.
    """
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"label of row {int(bad[0])} is {arr[bad[0]]}: classification labels must be given for every row")
        if not np.all(arr == np.round(arr)):
            row = int(np.flatnonzero(arr != np.round(arr))[0])
            raise ValueError(f"label of row {row} is {arr[row]}: float labels must be whole numbers (class ids) for task='classification'")
    if arr.dtype.kind == "O":
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and not np.isfinite(v))]
        if missing:
            raise ValueError(f"label of row {missing[0]} is missing")
        arr = arr.astype(str)
    classes, index = np.unique(arr, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"classification needs at least two classes, the labels hold only {classes.tolist()}")
    weight = None
    if balanced:
        counts = np.bincount(index, minlength=len(classes)).astype(np.float64)
        weight = (n / (len(classes) * counts))[index]
    elif class_weight is not None:
        names = [str(_plain(c)) for c in classes]
        unknown = sorted(set(class_weight) - set(names))
        if unknown:
            raise ValueError(f"class_weight names classes {unknown} that are not among the labels {names}")
        per_class = np.array([class_weight.get(c, 1.0) for c in names], dtype=np.float64)
        if (per_class <= 0).any() or not np.isfinite(per_class).all():
            raise ValueError("class weights must be positive and finite")
        weight = per_class[index]
    return index.astype(np.float64), [_plain(c) for c in classes], weight


def logits_to_proba(logits: np.ndarray, n_classes: int) -> np.ndarray:
    """One logit per row (binary) or K logits -> probabilities [n, n_classes]."""
    z = np.asarray(logits, dtype=np.float64)
    if n_classes == 2:
        z = z.reshape(len(z), -1)[:, 0]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        return np.stack([1.0 - p, p], axis=1)
    z = z.reshape(len(z), n_classes)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@torch.no_grad()
def widened_copy(source, n_extra: int, n_out: Optional[int] = None, zero_head: bool = False,
                 copy_scaling: bool = True):
    """A copy of ``source`` (an MLP or AttentionEncoder) built with ``n_extra`` extra inputs (and ``n_out``
    outputs when given): its weights, with zero weights on the extra input columns it did not have;
    ``zero_head`` zeroes the output layer, ``copy_scaling=False`` keeps the new model's default output
    scaling. Used by FineTune (conditioning inputs) and Delta (source prediction + conditions)."""
    args = {**source.init_args, "n_extra": int(n_extra), **({} if n_out is None else {"n_out": int(n_out)})}
    model = type(source)(**args)
    state = model.state_dict()
    for key, value in source.state_dict().items():  # no autograd: the function runs under torch.no_grad
        if key == source.extra_input_weight:
            state[key].zero_()
            state[key][:, : value.shape[1]] = value
        elif zero_head and key in ("head.weight", "head.bias"):
            state[key].zero_()
        elif copy_scaling or key not in ("y_mean", "y_std"):
            state[key].copy_(value)
    model.load_state_dict(state)
    return model


def with_new_head(source: MLP, n_out: int, seed: int, keep_head: bool = False) -> MLP:
    """A trainable copy of ``source`` (same trunk, input scaling) with an ``n_out``-output layer and
    identity output scaling (logits). ``keep_head=True`` keeps the source head (only when the widths match)."""
    a = dict(source.init_args)
    if keep_head and a["n_out"] == n_out:
        model = copy.deepcopy(source)
        model.y_mean.zero_()
        model.y_std.fill_(1.0)
        if source.y_std.numel() == 1:  # fold the source's output scaling into its head: logits unchanged
            model.head.weight.mul_(float(source.y_std[0]))
            model.head.bias.mul_(float(source.y_std[0])).add_(float(source.y_mean[0]))
        return model
    a["n_out"] = int(n_out)
    torch.manual_seed(seed)
    model = type(source)(**a)
    state = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("head.") and key not in ("y_mean", "y_std"):
            state[key] = value.clone()
    model.load_state_dict(state)
    return model


def classification_metrics(y_true_index, proba) -> Dict[str, float]:
    """ROC-AUC (binary; macro one-vs-rest for K classes), balanced accuracy, F1 (binary: positive class =
    the second sorted label; macro for K classes), log loss, Brier score (binary: mean squared error of the positive-class
    probability; K classes: squared error summed over classes, averaged over rows) and accuracy."""
    from sklearn import metrics

    y = np.asarray(y_true_index).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    pred = proba.argmax(1)
    present = np.unique(y)
    out: Dict[str, float] = {}
    if len(present) < 2:
        out["roc_auc"] = float("nan")
    elif k == 2:
        out["roc_auc"] = float(metrics.roc_auc_score(y, proba[:, 1]))
    else:
        out["roc_auc"] = float(metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=np.arange(k)))
    out["balanced_accuracy"] = float(metrics.balanced_accuracy_score(y, pred))
    out["f1"] = float(metrics.f1_score(y, pred, average="binary" if k == 2 else "macro", labels=None if k == 2 else np.arange(k),
                                       zero_division=0))
    out["log_loss"] = float(metrics.log_loss(y, np.clip(proba, 1e-15, 1), labels=np.arange(k)))
    onehot = np.eye(k)[y]
    out["brier"] = float(np.mean((proba[:, 1] - y) ** 2)) if k == 2 else float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    out["accuracy"] = float(np.mean(pred == y))
    return out
