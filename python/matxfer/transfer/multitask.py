"""Multi-task learning: one shared trunk, one head per task, loss masked where a label is missing."""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch

from ..nn import MLP, ArrayData, GraphData, GraphRegressor, TrainConfig, Trainer, predict
from .base import TransferStrategy
from .joint import default_joint_config, joint_rows, n_source_tasks

__all__ = ["MultiTask"]


class MultiTask(TransferStrategy):
    """Source task(s) and target as outputs of one network, trained jointly.

    The trunk starts from the source model. Each row carries labels for some tasks only; the
    others are masked out of the loss (no loss and no gradient, also when a task has no label in a
    whole batch). Residuals are divided by each task's spread so the tasks weigh alike per row,
    and target rows get ``target_share`` of the total weight.

    Any number of tasks: ``use_source(model, X_source, Y_source)`` with ``Y_source`` of shape
    [n_source, T] (NaN = no label; e.g. JARVIS OptB88vdW and TBmBJ gaps) gives T source heads plus
    the target head. Source heads start from the source model's head (column j when the source
    has T outputs, else its only output). ``predict_task(X, j)`` predicts source task j.

    Classification targets get one logit (binary) or one per class, trained on ``loss`` ("ce" /
    "focal"); a binary source classifier's head starts the binary target head. A binary source
    classifier's own task (1-D labels 0/1) is trained on the binary cross-entropy.

    Graph sources: ``use_source(graph_model, source_structures, y_source)``; the joint network is a
    copy of the source graph network with T + 1 outputs, trained on source and target graphs together.

    Parameters
    ----------
    max_source_rows : seeded random subset of the source used in joint training (None = all).
    target_share : fraction of the loss weight carried by the target rows.
    joint_config : training settings for the joint phase (default :func:`default_joint_config`).
    """

    supports_conditions = False  # trains on source rows, which have no conditions

    name = "multitask"
    needs_source_data = True

    def __init__(
        self,
        max_source_rows: Optional[int] = 20000,
        target_share: float = 0.5,
        joint_config: Optional[TrainConfig] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.max_source_rows = max_source_rows
        self.target_share = float(target_share)
        self.joint_config = joint_config or default_joint_config()

    def _params(self):
        return {"max_source_rows": self.max_source_rows, "target_share": self.target_share}

    @property
    def n_source_tasks(self) -> int:
        return n_source_tasks(self)

    def _source_kinds(self) -> list:
        if self.source_task_ == "classification" and self.n_source_tasks == 1:
            return ["bce"]
        return [self.joint_config.loss] * self.n_source_tasks

    def _build_graph_model(self, y_target: np.ndarray) -> GraphRegressor:
        """Graph network with one output per source task plus the target output, started from the source."""
        source = self._require_source()
        T = self.n_source_tasks
        torch.manual_seed(self.seed)
        model = GraphRegressor(source.init_args["graph"], n_out=T + 1, graph_options=source.graph_options)
        state = model.state_dict()
        src = source.state_dict()
        ys = self._y_source if self._y_source is not None else np.zeros((0, T))
        ys = ys[:, None] if ys.ndim == 1 else ys
        with torch.no_grad():
            for key, value in src.items():
                if not key.startswith("net.head.") and key not in ("y_mean", "y_std"):
                    state[key] = value.clone()
            for j in range(T + 1):
                k = j if (j < T and source.n_out == T) else 0
                state["net.head.weight"][j] = src["net.head.weight"][k]
                state["net.head.bias"][j] = src["net.head.bias"][k]
                if j < T and (source.n_out == T or j == 0):
                    state["y_mean"][j], state["y_std"][j] = src["y_mean"][k], src["y_std"][k]
                else:
                    col = ys[:, j][~np.isnan(ys[:, j])] if j < T else np.asarray(y_target, np.float64)
                    std = float(col.std()) if len(col) > 1 else 0.0
                    state["y_mean"][j], state["y_std"][j] = float(col.mean()), std if std > 1e-12 else 1.0
        model.load_state_dict(state)
        return model

    def _adapt_graph(self, X: GraphData, y: np.ndarray) -> None:
        if self.is_classifier:
            raise ValueError("MultiTask with a graph source supports regression targets only")
        config = self.joint_config.replace(seed=self.seed)
        source_graphs = self._X_source
        assert isinstance(source_graphs, GraphData) and self._y_source is not None
        # joint_rows only picks and stacks rows: give it row numbers and cut the graphs with them.
        rows = joint_rows(np.arange(len(source_graphs))[:, None], self._y_source, np.arange(len(X))[:, None], y,
                          self.max_source_rows, self.target_share, config.val_fraction, self.seed)
        T = self.n_source_tasks
        self._n_source_tasks: int = T
        model = self._build_graph_model(y)
        ys = rows.y_source[:, None] if rows.y_source.ndim == 1 else rows.y_source
        labels = np.concatenate([ys, rows.y_target[:, None]], axis=1)
        picked = rows.X[:, 0]
        graphs = GraphData.concat([source_graphs.subset(picked[~rows.is_target]), X.subset(picked[rows.is_target])])
        train = graphs.with_targets(labels, rows.weight)
        val = None
        if rows.X_val is not None and rows.y_val is not None:
            y_val = np.concatenate([np.full((len(rows.y_val), T), np.nan), rows.y_val[:, None]], axis=1)
            val = X.subset(rows.X_val[:, 0]).with_targets(y_val)
        for p in model.parameters():
            p.requires_grad_(True)
        torch.manual_seed(config.seed)
        Trainer(config).fit(model, train, val=val)
        self.target_ = model.cpu().eval()

    def build_model(self, y_target: np.ndarray) -> MLP:
        """MLP with one output per source task plus the target output(s), initialised from the source model."""
        source = self._require_source()
        a = source.init_args
        T = self.n_source_tasks
        width = self._net_outputs()
        torch.manual_seed(self.seed)
        model = type(source)(**{**a, "n_out": T + width, "n_extra": 0})
        state = model.state_dict()
        src = copy.deepcopy(source.state_dict())
        ys = self._y_source if self._y_source is not None else np.zeros((0, T))
        ys = ys[:, None] if ys.ndim == 1 else ys
        with torch.no_grad():
            for key, value in src.items():
                if not key.startswith("head.") and key not in ("y_mean", "y_std"):
                    state[key] = value
            for j in range(T):
                k = j if source.n_out == T else 0
                state["head.weight"][j] = src["head.weight"][k]
                state["head.bias"][j] = src["head.bias"][k]
                if source.n_out == T or j == 0:
                    state["y_mean"][j], state["y_std"][j] = src["y_mean"][k], src["y_std"][k]
                else:
                    col = ys[:, j][~np.isnan(ys[:, j])]
                    state["y_mean"][j] = float(col.mean())
                    state["y_std"][j] = float(col.std()) if col.std() > 1e-12 else 1.0
            if not self.is_classifier:
                state["head.weight"][T] = src["head.weight"][0]
                state["head.bias"][T] = src["head.bias"][0]
                tgt_std = float(np.std(y_target)) if len(y_target) > 1 and np.std(y_target) > 1e-12 else 1.0
                state["y_mean"][T], state["y_std"][T] = float(np.mean(y_target)), tgt_std
            else:
                state["y_mean"][T:], state["y_std"][T:] = 0.0, 1.0
                if self.source_task_ == "classification" and source.n_out == 1 and width == 1:
                    s_std, s_mean = float(src["y_std"][0]), float(src["y_mean"][0])
                    state["head.weight"][T] = src["head.weight"][0] * s_std
                    state["head.bias"][T] = src["head.bias"][0] * s_std + s_mean
        model.load_state_dict(state)
        return model

    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._X_source is None or self._y_source is None:  # set together by use_source()
            raise RuntimeError("MultiTask needs the source rows: use pretrain() or use_source(model, X, y)")
        if self.graph_source:
            self._adapt_graph(X, y)  # type: ignore[arg-type]
            return
        config = self.joint_config.replace(seed=self.seed)
        rows = joint_rows(self._X_source, self._y_source, X, y, self.max_source_rows, self.target_share,
                          config.val_fraction, self.seed)
        self._n_source_tasks = T = self.n_source_tasks
        model = self.build_model(y)
        ys = rows.y_source[:, None] if rows.y_source.ndim == 1 else rows.y_source
        labels = np.concatenate([ys, rows.y_target[:, None]], axis=1)
        weight = rows.weight.copy()
        if self._row_weight is not None and rows.target_index is not None:
            weight[rows.is_target] *= self._row_weight[rows.target_index]
        kinds = self._source_kinds()
        if self.is_classifier:
            kinds.append(self.loss if self.n_logits == 1 else f"{self.loss}:{self.n_logits}")
        else:
            kinds.append(self.joint_config.loss)
        loss = kinds[0] if len(set(kinds)) == 1 and ":" not in kinds[0] else kinds
        train = ArrayData(rows.X, labels, weight=weight)
        val = None
        if rows.X_val is not None and rows.y_val is not None:  # both set, or both None
            y_val = np.concatenate([np.full((len(rows.y_val), T), np.nan), rows.y_val[:, None]], axis=1)
            val = ArrayData(rows.X_val, y_val)
        torch.manual_seed(config.seed)
        Trainer(config.replace(loss=loss)).fit(model, train, val=val)
        self.target_ = model.cpu().eval()

    def predict_task(self, X, task: int) -> np.ndarray:
        """Prediction for source task ``task`` (0..T-1) from the jointly trained network."""
        self._require_adapted()
        T = self.n_source_tasks
        if not 0 <= task < T:
            raise ValueError(f"source task must be in [0, {T - 1}]")
        return predict(self.target_, self._inputs(X))[:, task]

    def _predict(self, X: np.ndarray) -> np.ndarray:
        out = predict(self.target_, X)
        out = out[:, None] if out.ndim == 1 else out
        T = self.n_source_tasks
        if self.is_classifier:
            return self.decision_scores(out[:, T:])
        return out[:, T]
