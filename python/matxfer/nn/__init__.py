"""PyTorch models and trainer for matxfer (needs the ``matxfer[torch]`` extra).

Importing this subpackage imports torch; ``import matxfer`` alone never does.
"""

from .attention import AttentionEncoder, attention_inputs
from .data import ArrayData, GraphData
from .graph_models import GraphRegressor
from .io import load_model, save_model
from .models import CGCNN, MLP, AngleUpdate, CGConv, CompositionEncoder, GaussianExpansion, LatentMLP
from .store import GraphStoreData
from .trainer import (
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    load_checkpoint,
    masked_loss,
    predict,
    resolve_device,
    save_checkpoint,
)

__all__ = [
    "ArrayData",
    "GraphData",
    "GraphStoreData",
    "MLP",
    "LatentMLP",
    "CompositionEncoder",
    "AttentionEncoder",
    "attention_inputs",
    "AngleUpdate",
    "CGCNN",
    "GraphRegressor",
    "CGConv",
    "GaussianExpansion",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "masked_loss",
    "predict",
    "resolve_device",
    "save_model",
    "load_model",
    "save_checkpoint",
    "load_checkpoint",
]
