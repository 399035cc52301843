"""Cross-modality transfer (CroMEL, Na 2025): knowledge from crystal structures to formula-only targets.

1. A structure encoder (CGCNN over crystal graphs) is trained on a source property of computed
   structures.
2. A composition encoder (descriptor -> embedding) is trained so that its embeddings of the same
   materials live in the structure encoder's embedding space: either with the paper's
   Wasserstein critic with gradient penalty (distribution alignment, plus the frozen structure
   head's property loss to keep the geometry meaningful) or with a simpler paired loss
   ``||e_comp(x_i) - e_struct(g_i)||^2``.
3. The composition encoder is transferred to a composition-only target with a new head.

Two defects of the reference implementation are avoided on purpose: every ``adapt`` works on a
*fresh copy* of the aligned encoder (cross-validation folds never share a fine-tuned encoder), and
inference is deterministic (no noise is sampled at prediction time).
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..nn import (
    CGCNN,
    ArrayData,
    CompositionEncoder,
    GraphData,
    TrainConfig,
    Trainer,
    predict,
    resolve_device,
)
from ..nn.models import MODEL_REGISTRY
from .base import TransferStrategy, as_2d, default_target_config
from .heads import fit_head, predict_head

__all__ = ["CrossModality"]


class CompositionRegressor(nn.Module):
    """Aligned composition encoder + a fresh head, trained end to end on the target (CrossModality's
    ``head="finetune"`` model). Built from ``init_args`` alone (for :func:`matxfer.transfer.load_strategy`);
    :meth:`from_encoder` starts it from an aligned encoder and the target's scaling. ``n_out > 1`` or
    a classifier (``from_encoder(..., n_logits=k)``): ``n_out`` logits, no target scaling."""

    def __init__(self, encoder: dict, head_hidden: int, n_out: int = 1) -> None:
        super().__init__()
        self.init_args = {"encoder": dict(encoder), "head_hidden": int(head_hidden), "n_out": int(n_out)}
        with torch.random.fork_rng(devices=[]):  # its weights are replaced; the head draws as it always did
            self.encoder = CompositionEncoder(**encoder)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(self.encoder.embedding_dim, int(head_hidden)), nn.SiLU(),
                                  nn.Linear(int(head_hidden), int(n_out)))
        self.register_buffer("y_mean", torch.zeros(1))
        self.register_buffer("y_std", torch.ones(1))

    @classmethod
    def from_encoder(cls, encoder: CompositionEncoder, y: np.ndarray, head_hidden: int,
                     n_logits: Optional[int] = None) -> CompositionRegressor:
        """Regression (``n_logits=None``): one output scaled to ``y``'s mean and spread. Classification:
        ``n_logits`` raw logits (1 for two classes)."""
        model = cls(encoder.init_args, head_hidden, 1 if n_logits is None else n_logits)  # head drawn as before
        model.encoder.load_state_dict(encoder.state_dict())
        if n_logits is None:
            std = float(np.std(y)) if len(y) > 1 else 1.0
            model.y_mean = torch.tensor([float(np.mean(y))])  # assigning a tensor to a buffer name updates the buffer
            model.y_std = torch.tensor([std if std > 1e-12 else 1.0])
        return model

    def forward(self, x):
        return self.head(self.encoder.encode(x)) * self.y_std + self.y_mean


MODEL_REGISTRY[CompositionRegressor.__name__] = CompositionRegressor


class CrossModality(TransferStrategy):
    """Parameters
    ----------
    alignment : "wasserstein" (critic with gradient penalty, as in CroMEL) or "paired".
    embedding_dim : shared embedding size of both encoders.
    graph_kwargs : keyword arguments of the :class:`matxfer.nn.CGCNN` structure encoder.
    structure_config : training settings of the structure encoder.
    align_epochs, align_batch_size, align_lr : alignment phase settings.
    n_critic, gp_weight : critic steps per encoder step and gradient-penalty weight (Wasserstein).
    property_weight : weight of the frozen structure head's property loss on composition
        embeddings during alignment (keeps the aligned space predictive).
    head : "finetune" (encoder + new MLP head trained on the target, default), or any head of
        :class:`FrozenFeatures` ("ridge", "linear", "mlp", a scikit-learn regressor) on frozen embeddings.
    """

    supports_conditions = False  # trains on source rows, which have no conditions

    name = "cromel"

    def __init__(
        self,
        alignment: str = "wasserstein",
        embedding_dim: int = 64,
        comp_hidden: Sequence[int] = (256, 128),
        graph_kwargs: Optional[Dict[str, Any]] = None,
        structure_config: Optional[TrainConfig] = None,
        align_epochs: int = 60,
        align_batch_size: int = 256,
        align_lr: float = 1e-3,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        property_weight: float = 1.0,
        head: Any = "finetune",
        head_hidden: int = 64,
        device=None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if alignment not in ("wasserstein", "paired"):
            raise ValueError("alignment must be 'wasserstein' or 'paired'")
        self.alignment = alignment
        self.embedding_dim = int(embedding_dim)
        self.comp_hidden = tuple(comp_hidden)
        self.graph_kwargs = {"node_dim": 64, "n_conv": 3, **(graph_kwargs or {})}
        self.structure_config = structure_config or default_target_config(epochs=100, batch_size=64, lr=2e-3)
        self.align_epochs = int(align_epochs)
        self.align_batch_size = int(align_batch_size)
        self.align_lr = float(align_lr)
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.property_weight = float(property_weight)
        self.head = head
        self.head_hidden = int(head_hidden)
        self.device = device
        self.structure_encoder_: Optional[CGCNN] = None
        self.composition_encoder_: Optional[CompositionEncoder] = None
        self.alignment_history_: list = []

    def _params(self):
        return {"alignment": self.alignment, "embedding_dim": self.embedding_dim, "head": self.head}

    # -- source: structures + compositions of the same materials ------------------------------------
    def pretrain(
        self, X_source, y_source, graphs: Any = None, structure_encoder: Any = None
    ) -> CrossModality:
        """``X_source``: composition descriptors of the source materials; ``graphs``: their crystal
        structures (same order): GraphData, or structures (a structure file, a StructureBatch,
        pymatgen / ASE structures), whose graphs are then built by the core with the encoder's
        Gaussian expansion; ``y_source``: the source property used to train the structure encoder.

        ``structure_encoder``: a message-passing structure encoder to use instead of training one:

        * a :class:`matxfer.nn.CGCNN` trained on ``(y - mean) / std`` of this ``y_source`` (e.g.
          ``other.structure_encoder_``);
        * a graph source trained on any property: a :class:`matxfer.nn.GraphRegressor` or a structure
          library model (e.g. ``matxfer.library.load("perov5/heat_of_formation/crystal_graph/cgcnn")``).
          Its graph settings build the graphs of ``graphs``, its pooled crystal embedding is the
          alignment target, and the property term of the alignment keeps the composition embeddings
          predictive of *its own* property (its predictions on the source structures), so
          ``y_source`` may be another property or even unknown for these materials (pass the
          encoder's predictions then)."""
        if graphs is None:
            raise ValueError("CrossModality.pretrain needs the source crystal structures (graphs=GraphData or structures)")
        from ..nn.graph_models import as_graph_model
        from .base import is_structures

        X = as_2d(X_source)
        y = np.asarray(y_source, dtype=np.float64)
        source_graph = None if structure_encoder is None or isinstance(structure_encoder, CGCNN) else as_graph_model(structure_encoder)
        if structure_encoder is not None and not isinstance(structure_encoder, CGCNN) and source_graph is None:
            raise TypeError("structure_encoder must be a CGCNN, a GraphRegressor or a structure library model")
        if not isinstance(graphs, GraphData):
            if not is_structures(graphs):
                raise TypeError("graphs must be GraphData or crystal structures")
            if source_graph is not None:
                graphs = source_graph.graphs(graphs)
            else:
                from ..nn import GraphRegressor

                cgcnn = structure_encoder.init_args if structure_encoder is not None else {
                    "hidden": (self.embedding_dim,), **self.graph_kwargs}
                graphs = GraphRegressor(cgcnn, graph_options={"cutoff": float(cgcnn.get("cutoff", 8.0))}).graphs(graphs)
        if len(graphs) != len(X) or y.shape != (len(X),):
            raise ValueError("graphs, X_source and y_source must describe the same materials in the same order")
        graphs = graphs.with_targets(y)
        if source_graph is not None:
            if source_graph.embedding_dim != self.embedding_dim:
                raise ValueError(f"the structure encoder's embedding size ({source_graph.embedding_dim}) differs from "
                                 f"embedding_dim ({self.embedding_dim})")
            structure = copy.deepcopy(source_graph.net).cpu().eval()
            for p in structure.parameters():
                p.requires_grad_(False)
            E = predict(structure, graphs, method="encode")
            own = predict(structure, graphs)  # the encoder's own property, in its unit scale
            self.structure_encoder_ = structure
            self.composition_encoder_ = self._align(X, own, E, structure)
            self.source_scaling_ = (float(source_graph.y_mean[0]), float(source_graph.y_std[0]))
            self.is_adapted_ = False
            return self
        # The graph network predicts in unit scale (y - mean) / std.
        y_mean, y_std = float(y.mean()), float(y.std()) if y.std() > 1e-12 else 1.0
        if structure_encoder is not None:
            if structure_encoder.embedding_dim != self.embedding_dim:
                raise ValueError("the structure encoder's embedding size differs from embedding_dim")
            structure = copy.deepcopy(structure_encoder).cpu().eval()
        else:
            torch.manual_seed(self.seed)
            structure = CGCNN(hidden=(self.embedding_dim,), **self.graph_kwargs)
            scaled = graphs.with_targets((y - y_mean) / y_std)
            Trainer(self.structure_config.replace(seed=self.seed, device=self.device)).fit(structure, scaled)
            structure = structure.cpu().eval()
        for p in structure.parameters():
            p.requires_grad_(False)
        target_embeddings = predict(structure, graphs, method="encode")
        self.structure_encoder_ = structure
        self.composition_encoder_ = self._align(X, (y - y_mean) / y_std, target_embeddings, structure)
        self.source_scaling_ = (y_mean, y_std)
        self.is_adapted_ = False
        return self

    def use_source(self, model=None, X_source=None, y_source=None, task=None):
        raise TypeError("CrossModality learns its own source models: call pretrain(X, y, graphs=...)")

    def _align(self, X: np.ndarray, y_scaled: np.ndarray, E: np.ndarray, structure: CGCNN) -> CompositionEncoder:
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        enc = CompositionEncoder(X.shape[1], self.comp_hidden, embedding_dim=self.embedding_dim).fit_scaling(X)
        enc.to(device)
        head = copy.deepcopy(structure.head).to(device)
        Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
        Et = torch.as_tensor(E, dtype=torch.float32, device=device)
        yt = torch.as_tensor(y_scaled, dtype=torch.float32, device=device)[:, None]
        opt = torch.optim.Adam(enc.encoder.parameters(), lr=self.align_lr, betas=(0.5, 0.9))
        critic = None
        if self.alignment == "wasserstein":
            d = self.embedding_dim
            critic = nn.Sequential(nn.Linear(d, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128), nn.LeakyReLU(0.2),
                                   nn.Linear(128, 1)).to(device)
            opt_c = torch.optim.Adam(critic.parameters(), lr=self.align_lr, betas=(0.5, 0.9))
        n, bs = len(X), self.align_batch_size
        self.alignment_history_ = []
        for epoch in range(self.align_epochs):
            order = torch.randperm(n, generator=generator).to(device)
            totals = {"align": 0.0, "property": 0.0}
            n_steps = 0
            for step, start in enumerate(range(0, n, bs)):
                idx = order[start : start + bs]
                if critic is not None:
                    # critic: maximise D(structure) - D(composition) with a gradient penalty on mixtures
                    with torch.no_grad():
                        fake = enc.encode(Xt[idx])
                    real = Et[idx]
                    alpha = torch.rand(len(idx), 1, device=device, generator=None)
                    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                    grad = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)[0]
                    gp = ((grad.norm(dim=1) - 1) ** 2).mean()
                    loss_c = critic(fake).mean() - critic(real).mean() + self.gp_weight * gp
                    opt_c.zero_grad(set_to_none=True)
                    loss_c.backward()
                    opt_c.step()
                    if step % self.n_critic != 0:
                        continue
                emb = enc.encode(Xt[idx])
                if critic is not None:
                    align = -critic(emb).mean()
                else:
                    align = (emb - Et[idx]).pow(2).sum(1).mean()
                prop = (head(emb) - yt[idx]).abs().mean()
                loss = align + self.property_weight * prop
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"alignment loss became {float(loss.detach())} at epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(enc.parameters(), 5.0)
                opt.step()
                totals["align"] += float(align.detach())
                totals["property"] += float(prop.detach())
                n_steps += 1
            self.alignment_history_.append({k: v / max(n_steps, 1) for k, v in totals.items()})
        return enc.cpu().eval()

    def _require_source(self):
        if self.composition_encoder_ is None:
            raise RuntimeError("CrossModality: call pretrain() before adapt()")
        return self.composition_encoder_

    def embed(self, X) -> np.ndarray:
        """Deterministic composition embeddings in the structure encoder's space."""
        return predict(self._require_source(), as_2d(X), method="encode")

    # -- target --------------------------------------------------------------------------------------
    def _adapt(self, X: np.ndarray, y: np.ndarray) -> None:
        # Classification: the fine-tuned model ends in ``n_logits`` logits trained on cross-entropy (or the
        # strategy's ``loss``) with the class weights; other heads are the classifiers of ``fit_head``.
        encoder = copy.deepcopy(self._require_source())  # a fresh copy per adapt: no leakage across folds
        config = self._target_config()
        if self.head == "finetune":
            torch.manual_seed(config.seed)
            model = CompositionRegressor.from_encoder(encoder, y, self.head_hidden,
                                                      n_logits=self.n_logits if self.is_classifier else None)
            for p in model.parameters():
                p.requires_grad_(True)
            Trainer(self._net_config(config).replace(lr=config.lr / 3)).fit(model, ArrayData(X, y, weight=self._row_weight))
            self.target_ = model.cpu().eval()
        else:
            H = predict(encoder, X, method="encode")
            self.target_ = (encoder, fit_head(self.head, H, y, (128, 64), config, n_classes=self.n_classes,
                                              weight=self._row_weight, loss=getattr(self, "loss", "ce")))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if isinstance(self.target_, tuple):
            encoder, head = self.target_
            return predict_head(head, predict(encoder, X, method="encode"), n_classes=self.n_classes)
        if self.is_classifier:
            return self._net_proba(self.target_, X)
        return predict(self.target_, X)
