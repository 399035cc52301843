"""A small, strict trainer: AdamW + schedule, early stopping, clipping, checkpoint/resume.

On CUDA it uses bf16 autocast and either keeps the whole data set on the GPU (when it fits in
``device_data_limit_bytes``) or pins host memory and copies each batch asynchronously. On CPU
it trains in float32 and is bit-for-bit reproducible for a given seed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from .data import ArrayData, GraphData

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "masked_loss",
    "predict",
    "resolve_device",
    "save_checkpoint",
    "load_checkpoint",
]

Data = Union[ArrayData, GraphData]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _distributed_context():
    """``(rank, world_size)`` when running under ``torchrun`` (or inside an initialised process
    group), else ``(0, 1)``. Under torchrun the process group is created here: gloo on CPU, nccl
    when the trainer's device is CUDA."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "MASTER_ADDR" not in os.environ:
            return 0, 1
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("MATXFER_DIST_BACKEND", "") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


@dataclasses.dataclass
class TrainConfig:
    """Training settings.

    epochs: maximum number of passes over the training data.
    batch_size: rows (or graphs) per optimiser step.
    lr, weight_decay: AdamW learning rate and decoupled weight decay.
    schedule: "cosine" (linear warm-up then cosine decay to ``lr * min_lr_ratio``), "onecycle",
        or "constant".
    warmup_fraction: share of all steps spent in linear warm-up (cosine only).
    patience: stop after this many epochs without a validation improvement of ``min_delta``
        (``None`` disables early stopping); the best weights are restored at the end.
    val_fraction: share of the training rows held out for early stopping when no validation
        data is passed (0 disables it).
    grad_clip: maximum global gradient norm (``None`` disables clipping).
    loss: "l1", "mse", "huber" (computed on ``(pred - y) / y_std`` when the model has an output
        scaling ``y_std`` so that tasks with different units weigh alike), or a classification loss on
        logits: "bce" (binary cross-entropy, one logit, labels 0/1), "ce" (softmax cross-entropy over
        the model's K outputs, label = class index 0..K-1; one output falls back to "bce"), "focal"
        (focal loss ``(1 - p_true)**focal_gamma * CE``, Lin et al. 2017; binary or multi-class as for
        "ce"). A sequence of kinds, one per label column, mixes tasks (multi-task models): each
        entry takes one output column, except ``"ce:K"`` / ``"focal:K"`` which take K (see
        :func:`masked_loss`).
    focal_gamma: focusing exponent of the "focal" loss.
    seed: seeds parameter initialisation order, shuffling and the validation split.
    device: "cpu", "cuda", a torch.device, or None for CUDA when present.
    bf16: use bfloat16 autocast on CUDA (ignored on CPU).
    progress: show a progress bar with live metrics (tqdm when installed, else one line per epoch).
    checkpoint: path of a checkpoint file written every ``checkpoint_every`` epochs (safetensors:
        model, optimizer, scheduler and generator state, no pickle; see :func:`save_checkpoint`);
        ``Trainer.fit(..., resume=True)`` continues from it and refuses any other file.
    distributed: "auto" (default) trains with DistributedDataParallel when launched by
        ``torchrun`` (WORLD_SIZE > 1): every optimiser step cuts the same global batch of
        ``batch_size`` rows and each process takes its share (rows ``rank::world_size``), so
        the result matches one process up to float summation order; only rank 0 writes
        checkpoints. False ignores the launcher.
    """

    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_fraction: float = 0.03
    min_lr_ratio: float = 0.01
    patience: Optional[int] = 30
    min_delta: float = 0.0
    val_fraction: float = 0.1
    grad_clip: Optional[float] = 5.0
    loss: Any = "l1"
    focal_gamma: float = 2.0
    seed: int = 0
    device: Any = None
    bf16: bool = True
    progress: bool = False
    checkpoint: Optional[str] = None
    checkpoint_every: int = 1
    device_data_limit_bytes: int = 2 << 30
    distributed: Any = "auto"

    def __post_init__(self) -> None:
        def whole(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {low}, got {v!r}")

        def number(name: str, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
            if not ok:
                interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"
                raise ValueError(f"TrainConfig.{name} must be a finite number in {interval}, got {v!r}")

        whole("epochs", 0)  # 0: an untrained network (a baseline), nothing is fitted
        whole("batch_size", 1)
        whole("checkpoint_every", 1)
        whole("device_data_limit_bytes", 0)
        if self.patience is not None:
            whole("patience", 1)
        number("lr", 0.0, low_open=True)
        number("weight_decay", 0.0)
        number("warmup_fraction", 0.0, 1.0)
        number("min_lr_ratio", 0.0, 1.0)
        number("min_delta", 0.0)
        number("val_fraction", 0.0, 1.0, high_open=True)
        number("focal_gamma", 0.0)
        if self.grad_clip is not None:
            number("grad_clip", 0.0, low_open=True)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


_LOSSES: Dict[str, Callable[[Tensor], Tensor]] = {
    "l1": torch.abs,
    "mse": torch.square,
    "huber": lambda r: torch.where(r.abs() < 1, 0.5 * r * r, r.abs() - 0.5),
}
#: classification losses on logits (computed in :func:`_classification_loss`)
CLASSIFICATION_LOSSES = ("bce", "ce", "focal")


def _parse_kind(kind: str) -> tuple[str, int]:
    """``"ce:4"`` -> ("ce", 4); ``"l1"`` -> ("l1", 1). Raises ValueError on an unknown kind."""
    name, _, width = str(kind).partition(":")
    if name not in _LOSSES and name not in CLASSIFICATION_LOSSES:
        raise ValueError(f"unknown loss {kind!r}; choose one of {sorted([*_LOSSES, *CLASSIFICATION_LOSSES])}")
    if width:
        if name not in ("ce", "focal") or not width.isdigit() or int(width) < 2:
            raise ValueError(f"loss {kind!r}: only 'ce:K' / 'focal:K' with K >= 2 take a width")
        return name, int(width)
    return name, 1


def check_loss(kind: Any) -> None:
    """Raise ValueError for an unknown loss name (a string or a sequence of per-column kinds)."""
    for k in [kind] if isinstance(kind, str) else list(kind):
        _parse_kind(k)


def _classification_loss(logits: Tensor, label: Tensor, kind: str, gamma: float) -> Tensor:
    """Per-row loss for one label column: ``logits`` [n, K] (K = 1: binary), ``label`` [n] (0/1 or a class
    index, NaN = no label; unlabelled rows give 0 with no gradient)."""
    mask = ~torch.isnan(label)
    logits = logits.float()
    if logits.shape[1] == 1:
        z = logits[:, 0]
        t = torch.where(mask, label, torch.zeros_like(label)).float()
        ce = torch.nn.functional.softplus(z) - z * t
        if kind == "focal":
            p_true = torch.exp(-ce)
            ce = (1 - p_true).pow(gamma) * ce
    else:
        index = torch.where(mask, label, torch.zeros_like(label)).long()
        if bool(((index < 0) | (index >= logits.shape[1])).any()):
            raise ValueError(f"class index outside 0..{logits.shape[1] - 1}")
        logp = torch.log_softmax(logits, dim=1).gather(1, index[:, None])[:, 0]
        ce = -logp
        if kind == "focal":
            ce = (1 - torch.exp(logp)).pow(gamma) * ce
    return torch.where(mask, ce, torch.zeros_like(ce))


def masked_loss(
    pred: Tensor,
    y: Tensor,
    weight: Optional[Tensor] = None,
    kind: Any = "l1",
    y_std: Optional[Tensor] = None,
    focal_gamma: float = 2.0,
) -> Tensor:
    """Mean elementwise loss over labelled entries only (NaN in ``y`` = no label).

    ``kind`` is one name for every column, or one kind per label column of ``y``: regression kinds
    and "bce"/"ce"/"focal" take one output column, ``"ce:K"``/``"focal:K"`` take K output columns
    (logits of K classes; the label is the class index). "ce"/"focal" with a single ``y`` column and
    K > 1 output columns is a K-class problem. Regression residuals are divided by the matching
    ``y_std`` entry; classification columns ignore it. An unlabelled entry contributes neither loss
    nor gradient, so a task with no label in a batch is harmless.
    """
    if y.ndim == 1:
        y = y[:, None]
    kinds = [kind] * y.shape[1] if isinstance(kind, str) else list(kind)
    if len(kinds) != y.shape[1]:
        raise ValueError(f"{len(kinds)} loss kinds for {y.shape[1]} label column(s)")
    parsed = [_parse_kind(k) for k in kinds]
    if isinstance(kind, str) and parsed[0][0] in ("ce", "focal") and y.shape[1] == 1 and pred.shape[1] > 1:
        parsed = [(parsed[0][0], pred.shape[1])]
    widths = [w for _, w in parsed]
    if pred.ndim != 2 or pred.shape[0] != y.shape[0] or pred.shape[1] != sum(widths):
        raise ValueError(f"prediction shape {tuple(pred.shape)} does not fit target shape {tuple(y.shape)} "
                         f"with loss {kind!r} (needs {sum(widths)} output column(s))")
    mask = ~torch.isnan(y)
    if all(name in _LOSSES for name, _ in parsed) and len(set(n for n, _ in parsed)) == 1:
        target = torch.where(mask, y, torch.zeros_like(y))
        residual = pred.float() - target
        if y_std is not None:
            residual = residual / y_std
        per_entry = _LOSSES[parsed[0][0]](residual) * mask
    else:
        columns, start = [], 0
        for j, (name, width) in enumerate(parsed):
            block = pred[:, start : start + width]
            if name in _LOSSES:
                t = torch.where(mask[:, j], y[:, j], torch.zeros_like(y[:, j]))
                r = block[:, 0].float() - t
                if y_std is not None:
                    r = r / y_std.reshape(-1)[start if y_std.numel() == pred.shape[1] else 0]
                columns.append(_LOSSES[name](r) * mask[:, j])
            else:
                columns.append(_classification_loss(block, y[:, j], name, focal_gamma))
            start += width
        per_entry = torch.stack(columns, dim=1)
    w = mask.float()
    if weight is not None:
        per_entry = per_entry * weight[:, None]
        w = w * weight[:, None]
    return per_entry.sum() / w.sum().clamp(min=1e-12)


def _forward(model: nn.Module, inputs) -> Tensor:
    out = model(*inputs)
    return out[:, None] if out.ndim == 1 else out


class _Progress:
    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="epoch", leave=False, file=sys.stderr)
            except ImportError:
                self.bar = None

    def update(self, epoch: int, metrics: Dict[str, float]) -> None:
        if not self.enabled:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            print(f"epoch {epoch}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """Fit a model on ``ArrayData``/``GraphData``; the model is called as ``model(*batch_inputs)``.

    ``param_groups`` (optional) is a list of ``{"params": [...], "lr": ...}`` dicts, used for
    per-layer learning rates; parameters with ``requires_grad=False`` are left untouched.
    After ``fit``, ``history`` holds one dict per epoch and ``best_epoch`` the restored epoch.
    """

    def __init__(self, config: Optional[TrainConfig] = None, **overrides) -> None:
        self.config = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
        check_loss(self.config.loss)
        if self.config.schedule not in ("cosine", "onecycle", "constant"):
            raise ValueError(f"unknown schedule {self.config.schedule!r}")
        self.device = resolve_device(self.config.device)
        if self.device.type == "cuda" and self.device.index is None and "LOCAL_RANK" in os.environ and self.config.distributed:
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        self.rank, self.world_size = 0, 1
        self.history: List[Dict[str, float]] = []
        self.best_epoch: Optional[int] = None

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Trainer(device={self.device}, epochs={c.epochs}, batch_size={c.batch_size}, lr={c.lr}, "
            f"schedule={c.schedule!r}, patience={c.patience}, loss={c.loss!r})"
        )

    # -- data placement -------------------------------------------------------------------------
    def _place(self, data: Data) -> tuple[Data, bool]:
        """Returns the data where batches are cut from, and whether batches still need a copy."""
        if self.device.type != "cuda":
            return data, False
        if data.nbytes() <= self.config.device_data_limit_bytes:
            return data.to(self.device), False
        return data.pin_memory(), True

    def _batches(self, data: Data, order: Tensor, copy_batches: bool, shard: bool = False) -> Iterable:
        bs = self.config.batch_size
        for start in range(0, len(order), bs):
            index = order[start : start + bs]
            if shard and self.world_size > 1:
                index = index[self.rank :: self.world_size]
            inputs, y, w = data.batch(index)
            if copy_batches:
                move = lambda t: t.to(self.device, non_blocking=True) if isinstance(t, Tensor) else t  # noqa: E731
                inputs, y, w = tuple(move(t) for t in inputs), move(y), move(w)
            yield inputs, y, w

    def _autocast(self):
        if self.device.type == "cuda" and self.config.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    # -- optimisation ---------------------------------------------------------------------------
    def _optimizer(self, model: nn.Module, param_groups) -> torch.optim.Optimizer:
        c = self.config
        if param_groups is None:
            param_groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
        groups = []
        for g in param_groups:
            params = [p for p in g["params"] if p.requires_grad]
            if params:
                groups.append({**g, "params": params, "lr": g.get("lr", c.lr)})
        if not groups:
            raise ValueError("no trainable parameters (every parameter is frozen)")
        return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay)

    def _scheduler(self, optimizer, total_steps: int):
        c = self.config
        if c.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(total_steps, 1)
            )
        if c.schedule == "constant":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        warmup = max(int(c.warmup_fraction * total_steps), 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
            return c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _split(self, train: Data, val: Optional[Data]):
        if val is not None or not self.config.val_fraction or self.config.patience is None:
            return train, val
        n = len(train)
        n_val = int(round(self.config.val_fraction * n))
        if n_val < 1 or n - n_val < 1:
            return train, None
        rng = np.random.default_rng(self.config.seed + 7919)
        perm = rng.permutation(n)
        return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[:n_val]))

    # -- distributed data parallel ---------------------------------------------------------------
    def _wrap_distributed(self, model: nn.Module) -> nn.Module:
        """The module the training steps call: ``model`` itself, or a DistributedDataParallel
        wrapper around it under torchrun (evaluation, best weights and checkpoints use ``model``)."""
        self.rank, self.world_size = _distributed_context() if self.config.distributed else (0, 1)
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _mean_over_ranks(self, value: float) -> float:
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t) / self.world_size

    def evaluate(self, model: nn.Module, data: Data) -> float:
        """Mean loss of ``model`` on ``data`` (labelled entries only)."""
        placed, copy_batches = self._place(data)
        y_std = getattr(model, "y_std", None)
        model.eval()
        total, weight = 0.0, 0.0
        with torch.no_grad(), self._autocast():
            order = torch.arange(len(placed), device=self._index_device(placed))
            for inputs, y, w in self._batches(placed, order, copy_batches):
                pred = _forward(model, inputs)
                n_labels = float((~torch.isnan(y)).sum()) if w is None else float(((~torch.isnan(y)) * w[:, None]).sum())
                total += float(masked_loss(pred, y, w, self.config.loss, y_std, self.config.focal_gamma)) * n_labels
                weight += n_labels
        return total / max(weight, 1e-12)

    @staticmethod
    def _index_device(data: Data) -> torch.device:
        if isinstance(data, ArrayData):
            return data.inputs[0].device
        return data.device if hasattr(data, "device") else data.z.device

    def fit(
        self,
        model: nn.Module,
        train: Data,
        val: Optional[Data] = None,
        param_groups: Optional[List[Dict[str, Any]]] = None,
        resume: bool = False,
        callback: Optional[Callable[[int, Dict[str, float]], bool]] = None,
    ) -> nn.Module:
        """Train ``model`` in place and return it (with the best validation weights restored).

        On the CPU the same seed, data and thread count give bit-identical weights, whatever else
        the machine runs: training uses torch's deterministic algorithms there (the default kernels
        did not: a CGCNN trained twice with two threads on a loaded machine came out different).

        ``resume=True`` continues from ``config.checkpoint`` when that file exists.
        ``callback(epoch, record)`` runs after every epoch (and its checkpoint); returning True stops
        training there, as an interruption would.
        """
        c = self.config
        if train.y is None:
            raise ValueError("training data has no targets")
        torch.manual_seed(c.seed)
        train, val = self._split(train, val)
        model.to(self.device)
        train_model = self._wrap_distributed(model)
        train_placed, copy_batches = self._place(train)
        optimizer = self._optimizer(model, param_groups)
        steps_per_epoch = max(math.ceil(len(train) / c.batch_size), 1)
        scheduler = self._scheduler(optimizer, steps_per_epoch * c.epochs)
        generator = torch.Generator().manual_seed(c.seed)
        y_std = getattr(model, "y_std", None)
        start_epoch, best_val, best_state, bad_epochs = 0, math.inf, None, 0
        self.history = []
        if resume and c.checkpoint and os.path.exists(c.checkpoint):
            state = load_checkpoint(c.checkpoint, map_location=self.device)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            start_epoch, best_val, bad_epochs = state["epoch"], state["best_val"], state["bad_epochs"]
            best_state, self.history, self.best_epoch = state["best_state"], state["history"], state["best_epoch"]
        progress = _Progress(c.progress, c.epochs - start_epoch)
        # On the CPU, train with torch's deterministic kernels: with two threads on a loaded machine the
        # default kernels gave different weights from run to run (same seed, same data); with these,
        # the same bits every time (see fit's docstring). Restored afterwards.
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        try:
            for epoch in range(start_epoch, c.epochs):
                t0 = time.perf_counter()
                model.train()
                order = torch.randperm(len(train), generator=generator).to(self._index_device(train_placed))
                total, n_batches = 0.0, 0
                for step, (inputs, y, w) in enumerate(self._batches(train_placed, order, copy_batches, shard=True)):
                    with self._autocast():
                        pred = _forward(train_model, inputs)
                    loss = masked_loss(pred, y, w, c.loss, y_std, c.focal_gamma)
                    if not torch.isfinite(loss):
                        raise TrainingDivergedError(
                            f"training loss is {float(loss.detach())} at epoch {epoch}, step {step}: lower the learning "
                            "rate, check the targets and descriptors for NaN/inf, or enable grad_clip"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if c.grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    total += float(loss.detach())
                    n_batches += 1
                record = {"epoch": epoch, "train_loss": self._mean_over_ranks(total / max(n_batches, 1)), "lr": optimizer.param_groups[0]["lr"]}
                if val is not None:
                    record["val_loss"] = self.evaluate(model, val)
                    if record["val_loss"] < best_val - c.min_delta:
                        best_val, bad_epochs, self.best_epoch = record["val_loss"], 0, epoch
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        bad_epochs += 1
                record["seconds"] = time.perf_counter() - t0
                self.history.append(record)
                progress.update(epoch, {k: v for k, v in record.items() if k != "epoch"})
                if c.checkpoint and self.rank == 0 and ((epoch + 1) % c.checkpoint_every == 0 or epoch + 1 == c.epochs):
                    self._save_checkpoint(
                        model, optimizer, scheduler, generator, epoch + 1, best_val, bad_epochs, best_state
                    )
                if c.patience is not None and val is not None and bad_epochs >= c.patience:
                    break
                if callback is not None and callback(epoch, record):
                    break
        finally:
            progress.close()
            torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return model

    def _save_checkpoint(self, model, optimizer, scheduler, generator, epoch, best_val, bad_epochs, best_state):
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "epoch": epoch,
            "best_val": best_val,
            "bad_epochs": bad_epochs,
            "best_state": best_state,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }
        save_checkpoint(state, self.config.checkpoint)


#: ``__metadata__`` keys of a checkpoint file.
CHECKPOINT_FORMAT = "matxfer.checkpoint/1"


def save_checkpoint(state: Dict[str, Any], path: str | os.PathLike) -> None:
    """Write a training state (nested dicts/lists of tensors and numbers, e.g. optimizer and
    scheduler state dicts) as one safetensors file: tensors as tensors, the structure as JSON in
    the file's metadata, plus the sha256 of the tensor bytes. No pickle is involved."""
    from .._safeio import encode_tree, write_safetensors_torch

    tensors: Dict[str, Tensor] = {}
    tree = encode_tree(state, tensors, "s")
    digest = _tensor_digest(tensors)
    meta = {"format": CHECKPOINT_FORMAT, "tree": json.dumps(tree, sort_keys=True), "tensors_sha256": digest}
    write_safetensors_torch(path, tensors, metadata=meta)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; anything else (a ``torch.save`` pickle,
    a truncated or altered file, another format) raises :class:`matxfer.ModelFormatError`."""
    from .._safeio import decode_tree, read_safetensors_metadata, read_safetensors_torch
    from ..exceptions import ModelFormatError

    meta = read_safetensors_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFormatError(path, f"not a matxfer checkpoint (format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    tensors = read_safetensors_torch(path, None, device=str(map_location))
    if _tensor_digest(tensors) != meta.get("tensors_sha256"):
        raise ModelFormatError(path, "tensor sha256 does not match the recorded one (tampered or corrupted)")
    try:
        return decode_tree(json.loads(meta["tree"]), tensors)
    except (KeyError, ValueError, TypeError) as err:
        raise ModelFormatError(path, f"invalid checkpoint structure ({err})") from None


def _tensor_digest(tensors: Dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@torch.no_grad()
def predict(
    model: nn.Module, data: Data | np.ndarray, batch_size: int = 8192, device=None, method: str = "forward"
) -> np.ndarray:
    """Deterministic predictions (eval mode, no noise, no dropout) as a float64 numpy array.

    ``method`` picks the model method to call (e.g. "embed" or "encode" for embeddings).
    """
    if not hasattr(data, "batch"):  # ArrayData, GraphData, GraphStoreData cut their own batches
        data = ArrayData(data)
    device = resolve_device(device) if device is not None else next(model.parameters()).device
    model.eval()
    fn = model if method == "forward" else getattr(model, method)
    outs = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)))
        inputs, _, _ = data.batch(idx)
        inputs = tuple(t.to(device) if isinstance(t, Tensor) else t for t in inputs)
        out = fn(*inputs)
        outs.append(out.float().cpu())
    if not outs:
        return np.zeros((0,), dtype=np.float64)
    result = torch.cat(outs).double().numpy()
    return result[:, 0] if result.ndim == 2 and result.shape[1] == 1 else result
