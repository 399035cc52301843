"""Transfer learning from large (DFT) data sets to small (experimental) ones.

Every strategy has the same three calls: ``pretrain`` (or ``use_source``), ``adapt``, ``predict``;
:func:`cross_validate` and :func:`learning_curve` compare them honestly, each beside the
:class:`FromScratch` baseline. Needs the ``matxfer[torch]`` extra; importing it imports torch.
"""

from ..library.scan import ScanResult, scan
from .auto import AUTO_CANDIDATES, AutoTransfer, auto
from .base import TransferStrategy, default_source_config, default_target_config, pretrain_graph, pretrain_mlp
from .baselines import BASELINE_GRIDS, TreeBaseline, baseline_strategies
from .conformal import Conformal, interval_calibration
from .cromel import CrossModality
from .delta import Delta
from .encoders import pretrain_attention
from .ensemble import Ensemble
from .evaluation import (
    MATBENCH_SEED,
    CVResult,
    composition_keys,
    cross_validate,
    grouped_folds,
    learning_curve,
    learning_curve_plot,
    matbench_kfold,
    overlap_mask,
    parity_plot,
    regression_metrics,
)
from .finetune import FineTune
from .frozen import FrozenFeatures
from .io import load_strategy, save_strategy
from .joint import default_joint_config
from .latent import LatentVariable
from .multitask import MultiTask
from .scratch import FromScratch
from .tasks import classification_metrics
from .uncertainty import MCDropout

STRATEGIES = {
    cls.name: cls
    for cls in (FromScratch, FrozenFeatures, FineTune, MultiTask, Delta, LatentVariable, Ensemble, CrossModality,
                Conformal, TreeBaseline, MCDropout, AutoTransfer)
}

__all__ = [
    "TransferStrategy",
    "FromScratch",
    "FrozenFeatures",
    "FineTune",
    "MultiTask",
    "Delta",
    "CrossModality",
    "Ensemble",
    "LatentVariable",
    "STRATEGIES",
    "pretrain_mlp",
    "pretrain_graph",
    "pretrain_attention",
    "default_source_config",
    "default_target_config",
    "default_joint_config",
    "MATBENCH_SEED",
    "matbench_kfold",
    "regression_metrics",
    "CVResult",
    "cross_validate",
    "learning_curve",
    "composition_keys",
    "grouped_folds",
    "overlap_mask",
    "parity_plot",
    "learning_curve_plot",
    "scan",
    "ScanResult",
    "save_strategy",
    "load_strategy",
    "Conformal",
    "MCDropout",
    "interval_calibration",
    "TreeBaseline",
    "BASELINE_GRIDS",
    "baseline_strategies",
    "classification_metrics",
    "auto",
    "AutoTransfer",
    "AUTO_CANDIDATES",
]
