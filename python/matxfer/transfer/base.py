"""The uniform interface shared by every transfer strategy.

A strategy is used in three steps::

    strategy.pretrain(X_source, y_source)   # or strategy.use_source(model, X_source, y_source)
    strategy.adapt(X_target, y_target)
    strategy.predict(X_new)

Classification: ``task="classification"`` (binary or multi-class labels of any type) makes every
strategy train on cross-entropy (``loss="focal"`` for the focal loss, ``class_weight="balanced"`` or a
``{label: weight}`` dict to reweight classes); ``predict`` then returns labels and ``predict_proba``
class probabilities (columns in the order of ``classes_``). ``task=None`` (default) infers it:
classification for bool/string labels, or for 0/1 labels with a classifier as source (a library
model's card says so); regression otherwise. Say ``task=...`` explicitly when in doubt.

``fresh()`` returns an independent copy that keeps the pretrained state and drops anything
learned from the target, which is what cross-validation uses for every fold: fine-tuning in one
fold can never leak into the next.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..nn import MLP, ArrayData, AttentionEncoder, GraphData, GraphRegressor, TrainConfig, Trainer, predict
from ..nn.graph_models import as_graph_model

__all__ = ["TransferStrategy", "default_source_config", "default_target_config", "pretrain_mlp", "pretrain_graph",
           "as_2d", "TASKS"]

TASKS = ("regression", "classification")
#: network classes a strategy accepts as its source (all share the MLP's layers/head interface)
SOURCE_MODELS = (MLP, AttentionEncoder)
CLASSIFICATION_LOSSES = ("ce", "focal")


def default_source_config(**changes) -> TrainConfig:
    """Training settings for a source (DFT, ~1e5 rows) model."""
    return TrainConfig(
        epochs=60, batch_size=512, lr=2e-3, weight_decay=1e-4, patience=10, val_fraction=0.05, loss="l1"
    ).replace(**changes)


def default_target_config(**changes) -> TrainConfig:
    """Training settings for a target (experimental, 1e1-1e4 rows) model; same budget for every strategy."""
    return TrainConfig(
        epochs=150, batch_size=128, lr=1e-3, weight_decay=1e-3, patience=20, val_fraction=0.1, loss="l1"
    ).replace(**changes)


def as_2d(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"descriptors must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    return X


def _as_y(y, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("targets contain NaN or inf")
    return y


def _as_source_y(y, n: int) -> np.ndarray:
    """Source labels: [n] (one task, every row labelled) or [n, T] (T tasks, NaN = no label)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        return _as_y(y, n)
    if y.ndim != 2 or y.shape[0] != n or y.shape[1] < 1:
        raise ValueError(f"source targets must have shape ({n},) or ({n}, n_tasks), got {y.shape}")
    if np.isinf(y).any():
        row, col = np.argwhere(np.isinf(y))[0]
        raise ValueError(f"source target row {row}, task {col} is inf")
    empty = np.flatnonzero(np.isnan(y).all(axis=0))
    if empty.size:
        raise ValueError(f"source task {int(empty[0])} has no label at all")
    return y


def pretrain_mlp(
    X: np.ndarray,
    y: np.ndarray,
    hidden: Sequence[int] = (512, 256, 128),
    config: Optional[TrainConfig] = None,
    dropout: float = 0.0,
    **mlp_kwargs: Any,
) -> MLP:
    """Train a descriptor MLP (input and output scaling fitted on ``X``/``y``) and return it in eval mode."""
    X = as_2d(X)
    y = np.asarray(y, dtype=np.float64)
    config = config or default_source_config()
    torch.manual_seed(config.seed)
    n_out = 1 if y.ndim == 1 else y.shape[1]
    model = MLP(X.shape[1], hidden, n_out=n_out, dropout=dropout, **mlp_kwargs).fit_scaling(X).fit_target_scaling(y)
    Trainer(config).fit(model, ArrayData(X, y))
    return model.cpu().eval()


def is_structures(X: Any) -> bool:
    """Whether ``X`` is structure input (graphs, a StructureBatch, a structure file, or a list of
    pymatgen / ASE / dict structures) rather than a descriptor matrix."""
    import os

    from ..graphs import BatchedGraph
    from ..structures import StructureBatch

    if isinstance(X, (GraphData, BatchedGraph, StructureBatch, str, os.PathLike)):
        return True
    if isinstance(X, (list, tuple)) and len(X) > 0:
        first = X[0]
        return not isinstance(first, (int, float, np.number, list, tuple, np.ndarray))
    return False


def pretrain_graph(
    structures: Any,
    y: Any,
    graph: Optional[Dict[str, Any]] = None,
    config: Optional[TrainConfig] = None,
    graph_options: Optional[Dict[str, Any]] = None,
) -> GraphRegressor:
    """Train a crystal-graph source network (a :class:`matxfer.nn.GraphRegressor` around a CGCNN with
    keyword arguments ``graph``, default ``node_dim=64, n_conv=3, hidden=(128,)``) on ``structures``
    and property ``y`` (output scaling fitted on ``y``); returns it in eval mode."""
    y = np.asarray(y, dtype=np.float64)
    config = config or default_source_config(batch_size=64)
    torch.manual_seed(config.seed)
    n_out = 1 if y.ndim == 1 else y.shape[1]
    model = GraphRegressor({"node_dim": 64, "n_conv": 3, "hidden": (128,), **(graph or {})}, n_out=n_out,
                           graph_options=graph_options)
    data = structures if isinstance(structures, GraphData) else model.graphs(structures)
    if len(data) != len(y):
        raise ValueError(f"{len(data)} structures but {len(y)} targets")
    model.fit_target_scaling(y)
    Trainer(config).fit(model, data.with_targets(y))
    return model.cpu().eval()


def finite_conditions(C: np.ndarray) -> np.ndarray:
    """``C`` ([n, c] conditioning columns) unchanged, or an error naming the first non-finite entry."""
    bad = np.argwhere(~np.isfinite(C))
    if len(bad):
        raise ValueError(f"condition column {int(bad[0, 1])} of row {int(bad[0, 0])} is not finite")
    return C


class TransferStrategy:
    """Base class: subclasses implement ``_adapt`` and ``_predict``; most reuse ``pretrain`` as is.

    Parameters shared by all strategies
    -----------------------------------
    hidden : widths of the source MLP built by ``pretrain``.
    source_config, target_config : :class:`matxfer.nn.TrainConfig` for source and target training.
    seed : seeds every model built on the target.
    output_floor : predictions are clipped from below at this value (e.g. 0 for band gaps,
        which cannot be negative); ``None`` leaves them as they are (regression only).
    task : "regression", "classification" or None (inferred at ``adapt``, see the module docstring).
    loss : classification loss, "ce" (cross-entropy, default) or "focal" (focal loss with
        ``target_config.focal_gamma``); regression uses ``target_config.loss``.
    class_weight : None, "balanced" (weights ``n / (K * n_k)``) or a ``{label: weight}`` mapping;
        applied as per-row loss weights (and ``sample_weight`` for scikit-learn heads).
    n_conditions : the last ``n_conditions`` columns of ``X`` are conditioning inputs (temperature,
        doping level, ...) rather than descriptors: the source model never sees them; the target
        model does (standardised with the training rows' mean and spread). FrozenFeatures appends them
        to the frozen features, Delta to its head's inputs, FineTune feeds them to new first-layer
        inputs that start at zero weight (so training starts at the source); FromScratch and
        TreeBaseline see every column anyway. MultiTask, LatentVariable and graph sources refuse them.
    """

    name = "base"
    #: whether ``adapt`` also trains on the source rows (multi-task, latent variable)
    needs_source_data = False
    # class-level defaults: strategies saved before these attributes existed load and adapt as regressors
    task: Optional[str] = None
    loss = "ce"
    class_weight: Optional[Dict[str, float]] = None
    _balanced = False
    source_task_ = "regression"
    task_: Optional[str] = None
    classes_: Optional[list] = None
    _row_weight: Optional[np.ndarray] = None
    n_conditions = 0
    _condition_scale: Optional[list] = None
    #: columns of the descriptor matrix seen by adapt (None for graph inputs and for files saved before it)
    n_features_in_: Optional[int] = None
    #: whether the strategy can use conditioning columns (see ``n_conditions``)
    supports_conditions = True

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256, 128),
        source_config: Optional[TrainConfig] = None,
        target_config: Optional[TrainConfig] = None,
        seed: int = 0,
        output_floor: Optional[float] = None,
        task: Optional[str] = None,
        loss: str = "ce",
        class_weight: Union[None, str, Mapping[Any, float]] = None,
        n_conditions: int = 0,
    ) -> None:
        if isinstance(n_conditions, bool) or not isinstance(n_conditions, (int, np.integer)) or n_conditions < 0:
            raise ValueError(f"n_conditions must be a whole number >= 0, not {n_conditions!r}")
        if n_conditions and not self.supports_conditions:
            raise ValueError(f"{type(self).__name__} does not take conditioning columns (n_conditions); FrozenFeatures, "
                             "Delta, FineTune, FromScratch and TreeBaseline do (wrappers such as Ensemble pass the "
                             "columns on to members built with n_conditions)")
        self.n_conditions = int(n_conditions)
        self._condition_scale = None
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} or None, not {task!r}")
        if loss not in CLASSIFICATION_LOSSES:
            raise ValueError(f"loss must be one of {CLASSIFICATION_LOSSES} (the classification loss), not {loss!r}")
        if class_weight is not None and class_weight != "balanced" and not isinstance(class_weight, Mapping):
            raise ValueError("class_weight must be None, 'balanced' or a {label: weight} mapping")
        self.task = task
        self.loss = loss
        self.class_weight = None if class_weight is None or isinstance(class_weight, str) else {
            str(k): float(v) for k, v in class_weight.items()}
        self._balanced = class_weight == "balanced"
        self.output_floor = output_floor
        self.hidden = tuple(int(h) for h in hidden)
        self.source_config = source_config or default_source_config()
        self.target_config = target_config or default_target_config()
        self.seed = int(seed)
        self.source_model_: Any = None  # an MLP, or a GraphRegressor for a graph source
        self._X_source: Optional[np.ndarray] = None
        self._y_source: Optional[np.ndarray] = None
        #: everything learned from the target lives here, so ``fresh()`` can drop it in one step
        self.target_: Any = None
        self.is_adapted_ = False
        #: "regression"/"classification" of the source model (a library card, or ``use_source(task=)``)
        self.source_task_ = "regression"
        #: set by ``adapt``: the task, the sorted class labels (classification) and per-row weights
        self.task_: Optional[str] = None
        self.classes_: Optional[list] = None
        self._row_weight: Optional[np.ndarray] = None

    # -- source -----------------------------------------------------------------------------------
    def pretrain(self, X_source, y_source) -> TransferStrategy:
        """Train the source model on (descriptors, property) of the source data set; with structures as
        ``X_source`` (a structure file, a StructureBatch, pymatgen / ASE structures, GraphData) the source
        is a crystal-graph network (:func:`pretrain_graph`)."""
        if is_structures(X_source):
            y = np.asarray(y_source, dtype=np.float64)
            source = pretrain_graph(X_source, _as_y(y, len(y)), config=self.source_config.replace(seed=self.seed))
            return self.use_source(source, X_source, y)
        X = as_2d(X_source)
        y = _as_y(y_source, len(X))
        model = pretrain_mlp(X, y, self.hidden, self.source_config.replace(seed=self.seed))
        return self.use_source(model, X, y)

    def use_source(self, model: Any, X_source=None, y_source=None, task: Optional[str] = None) -> TransferStrategy:
        """Adopt an already trained source model (a private copy is kept); strategies that train on the
        source rows during ``adapt`` also need ``X_source``/``y_source``. ``task`` says whether the
        source is a "regression" model or a (binary, logit-output) "classification" model; by default
        it is read from ``model.task`` (set by ``LibraryModel.to_torch`` from the card), else regression."""
        graph = as_graph_model(model)
        if graph is None and not isinstance(model, SOURCE_MODELS):
            raise TypeError("the source model must be a matxfer.nn.MLP, a matxfer.nn.AttentionEncoder, or a graph model "
                            "(matxfer.nn.GraphRegressor, matxfer.nn.CGCNN, or a structure library model)")
        task = task or getattr(model, "task", None) or "regression"
        if task not in TASKS:
            raise ValueError(f"source task must be one of {TASKS}, not {task!r}")
        if graph is not None and task != "regression":
            raise ValueError("graph sources are regression models (classification sources must be MLPs for now)")
        self.source_task_ = task
        self.source_model_ = copy.deepcopy(graph if graph is not None else model).cpu().eval()
        for p in self.source_model_.parameters():
            p.requires_grad_(False)
        if X_source is not None:
            self._X_source = self._inputs(X_source)
            self._y_source = _as_source_y(y_source, len(self._X_source))
        if self.needs_source_data and self._X_source is None:
            raise ValueError(f"{type(self).__name__} trains on the source rows: pass X_source and y_source")
        self.is_adapted_ = False
        return self

    @property
    def graph_source(self) -> bool:
        """Whether the source is a crystal-graph network (inputs are structures)."""
        return isinstance(getattr(self, "source_model_", None), GraphRegressor)

    def _inputs(self, X):
        """Model inputs: a descriptor matrix for an MLP source; for a graph source, the crystal graphs of
        the structures (built with the source's settings, the Gaussian expansion from the core)."""
        if not self.graph_source:
            return as_2d(X)
        if isinstance(X, GraphData):
            return X
        if isinstance(X, np.ndarray) and X.dtype.kind in "fiu":
            raise TypeError(f"{type(self).__name__} has a graph source: pass structures (a structure file, a "
                            "StructureBatch, pymatgen / ASE structures or GraphData), not a descriptor matrix")
        return self.source_model_.graphs(X)

    def _data(self, X, y=None, weight=None):
        """Training data of ``X`` (descriptors or graphs) with targets and weights."""
        if isinstance(X, GraphData):
            return X.with_targets(y, weight)
        return ArrayData(X, y, weight=weight)

    def _require_source(self) -> Any:  # an MLP, or a GraphRegressor for a graph source
        if self.source_model_ is None:
            raise RuntimeError(f"{type(self).__name__}: call pretrain() or use_source() before adapt()")
        return self.source_model_

    def source_predict(self, X) -> np.ndarray:
        return predict(self._require_source(), self.descriptors_of(self._inputs(X)))

    # -- conditioning columns ---------------------------------------------------------------------
    def descriptors_of(self, X):
        """``X`` without its conditioning columns (what the source model sees)."""
        if not self.n_conditions or isinstance(X, GraphData):
            return X
        return X[:, : X.shape[1] - self.n_conditions]

    def conditions_of(self, X) -> Optional[np.ndarray]:
        """The conditioning columns of ``X``, standardised with the training rows' mean and spread
        (None without conditions)."""
        if not self.n_conditions:
            return None
        C = self._condition_columns(X)
        if self._condition_scale is None:
            raise RuntimeError(f"{type(self).__name__}: conditions are scaled at adapt(); call adapt() first")
        mean, std = (np.asarray(v, dtype=np.float64) for v in self._condition_scale)
        return (C - mean) / std

    def _condition_columns(self, X) -> np.ndarray:
        return finite_conditions(np.asarray(X[:, X.shape[1] - self.n_conditions :], dtype=np.float64))

    def _check_conditions(self, X) -> None:
        """Refuse conditioning columns where they cannot be used; fit their scaling on the training rows."""
        if not self.n_conditions:
            return
        if self.graph_source or isinstance(X, GraphData):
            raise ValueError(f"{type(self).__name__}: conditioning columns (n_conditions) need a descriptor source; "
                             "a graph source's inputs are structures")
        if self.source_model_ is not None and not isinstance(self.source_model_, MLP):
            raise ValueError(f"{type(self).__name__}: n_conditions needs an MLP source (an AttentionEncoder takes its "
                             "conditions through attention_inputs(..., conditions=...))")
        if X.shape[1] <= self.n_conditions:
            raise ValueError(f"X has {X.shape[1]} columns: too few for {self.n_conditions} conditioning column(s) "
                             "after the descriptors")
        C = self._condition_columns(X)
        std = C.std(axis=0)
        self._condition_scale = [C.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()]

    # -- target -----------------------------------------------------------------------------------
    def adapt(self, X, y) -> TransferStrategy:
        """Learn the target task from descriptors ``X`` (structures for a graph source) and labels ``y``;
        returns self."""
        X = self._inputs(X)
        self._check_conditions(X)
        self.n_features_in_ = None if isinstance(X, GraphData) else int(X.shape[1])
        self.task_ = self.resolve_task(y)
        if self.task_ == "classification":
            from .tasks import encode_labels

            y, self.classes_, self._row_weight = encode_labels(y, len(X), self.class_weight, self._balanced)
        else:
            y = _as_y(y, len(X))
            self.classes_, self._row_weight = None, None
        self._adapt(X, y)
        self.is_adapted_ = True
        return self

    fit = adapt  # scikit-learn spelling

    def resolve_task(self, y) -> str:
        """The task ``adapt`` will train for these labels (``self.task`` when set)."""
        if self.task is not None:
            return self.task
        arr = np.asarray(y)
        if arr.dtype.kind in "bOUS":
            return "classification"
        if self.source_task_ == "classification" and arr.size and np.isin(arr, (0, 1)).all():
            return "classification"
        return "regression"

    @property
    def is_classifier(self) -> bool:
        return getattr(self, "task_", None) == "classification"

    @property
    def n_classes(self) -> int:
        return len(getattr(self, "classes_", None) or ())

    @property
    def n_logits(self) -> int:
        """Network outputs of a classifier: one logit for two classes, else one per class."""
        return 1 if self.n_classes == 2 else self.n_classes

    def _require_adapted(self) -> None:
        if not self.is_adapted_:
            raise RuntimeError(f"{type(self).__name__}: call adapt() before predict()")

    def predict(self, X, return_std: bool = False):
        """Predictions (regression: values; classification: labels). ``return_std=True`` also returns
        a predictive standard deviation per row (regression only; strategies that have none raise
        and say which wrapper gives one)."""
        self._require_adapted()
        X = self._checked_inputs(X)
        if self.is_classifier:
            if return_std:
                raise ValueError("return_std is for regression; a classifier's uncertainty is predict_proba")
            proba = self.predict_proba(X)
            return np.asarray(self.classes_ or [])[proba.argmax(1)]
        if return_std:
            mean, std = self._predict_with_std(X)
            mean = np.asarray(mean, dtype=np.float64)
            return (mean if self.output_floor is None else np.maximum(mean, self.output_floor)), np.asarray(std, np.float64)
        pred = np.asarray(self._predict(X), dtype=np.float64)
        return pred if self.output_floor is None else np.maximum(pred, self.output_floor)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities [n, n_classes] (columns in the order of ``classes_``)."""
        self._require_adapted()
        if not self.is_classifier:
            raise ValueError(f"{type(self).__name__} was adapted for regression; predict_proba needs task='classification'")
        proba = np.asarray(self._predict(self._checked_inputs(X)), dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] != self.n_classes:
            raise RuntimeError(f"internal: class probabilities of shape {proba.shape} for {self.n_classes} classes")
        return proba

    def _checked_inputs(self, X):
        """``_inputs(X)``, refusing a descriptor matrix whose width differs from the one ``adapt`` saw."""
        X = self._inputs(X)
        expected = self.n_features_in_
        if expected is not None and not isinstance(X, GraphData) and X.shape[1] != expected:
            cond = f" ({expected - self.n_conditions} descriptors + {self.n_conditions} conditioning)" if self.n_conditions else ""
            raise ValueError(f"{type(self).__name__} was adapted on {expected} columns{cond}; X has {X.shape[1]}")
        return X

    def decision_scores(self, logits: np.ndarray) -> np.ndarray:
        """Network logits [n] or [n, K] -> class probabilities [n, n_classes]."""
        from .tasks import logits_to_proba

        return logits_to_proba(logits, self.n_classes)

    def _predict_with_std(self, X: np.ndarray):
        raise NotImplementedError(
            f"{type(self).__name__} gives no predictive standard deviation by itself: wrap it in "
            "Ensemble([...seeds...]) or Conformal(strategy), or use mc_samples=... where supported")

    def predict_interval(self, X, coverage: float = 0.95):
        """(lower, upper) = mean -+ z * std from the strategy's own std, assuming Gaussian errors (not
        calibrated: :class:`Conformal` gives intervals with a guaranteed coverage)."""
        from scipy.stats import norm

        mean, std = self.predict(X, return_std=True)
        z = float(norm.ppf(0.5 + coverage / 2))
        return mean - z * std, mean + z * std

    def _net_config(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the loss the target network trains on (classification: ce/focal)."""
        return config.replace(loss=getattr(self, "loss", "ce")) if self.is_classifier else config

    def _net_outputs(self) -> int:
        return self.n_logits if self.is_classifier else 1

    def _net_proba(self, model, data) -> np.ndarray:
        """Probabilities from a classifier network's logits."""
        return self.decision_scores(predict(model, data))

    def fresh(self) -> TransferStrategy:
        """An independent copy holding the pretrained state only (target state dropped)."""
        state = {k: v for k, v in self.__dict__.items() if k != "target_"}
        # Deep-copy everything except the (read-only, possibly large) source arrays.
        memo = {id(self._X_source): self._X_source, id(self._y_source): self._y_source}
        clone = copy.copy(self)
        clone.__dict__ = copy.deepcopy(state, memo)
        clone.target_ = None
        clone.is_adapted_ = False
        return clone

    def _target_config(self, **changes) -> TrainConfig:
        return self.target_config.replace(seed=self.seed, **changes)

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _params(self) -> Dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        state = "adapted" if self.is_adapted_ else ("pretrained" if self.source_model_ is not None else "new")
        return f"{type(self).__name__}({params}{', ' if params else ''}hidden={list(self.hidden)}, seed={self.seed}) [{state}]"
