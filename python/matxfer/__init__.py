"""matxfer: fast featurization and transfer learning for materials and molecules.

>>> import matxfer
>>> X, names = matxfer.featurize(["Fe2O3", "NaCl"], preset="magpie")
>>> X.shape
(2, 132)

Optional parts are imported on first use: ``matxfer.CompositionFeaturizer`` (scikit-learn),
``matxfer.nn`` and ``matxfer.transfer`` (PyTorch).
"""

from __future__ import annotations

from matxfer._core import __version__
from matxfer.exceptions import (
    ArgumentTypeError,
    FeaturizationError,
    FormulaError,
    InternalError,
    InvalidArgumentError,
    LimitExceededError,
    MatxferError,
    ModelFormatError,
    ModelNotFoundError,
    StructureError,
    StructureParseError,
)
from matxfer.featurize import (
    PRESETS,
    Featurized,
    Rejected,
    element_table,
    element_tables,
    feature_names,
    featurize,
    featurize_frame,
    parse_formula,
)

__all__ = [
    "__version__",
    "featurize",
    "featurize_frame",
    "feature_names",
    "parse_formula",
    "element_table",
    "element_tables",
    "Featurized",
    "Rejected",
    "PRESETS",
    "CompositionFeaturizer",
    "MatxferError",
    "FormulaError",
    "FeaturizationError",
    "InvalidArgumentError",
    "LimitExceededError",
    "ArgumentTypeError",
    "StructureError",
    "StructureParseError",
    "InternalError",
    "ModelFormatError",
    "ModelNotFoundError",
]


def __getattr__(name: str):
    # scikit-learn is optional: import it only when the transformer is asked for.
    if name == "CompositionFeaturizer":
        from matxfer.sklearn import CompositionFeaturizer

        return CompositionFeaturizer
    raise AttributeError(f"module 'matxfer' has no attribute {name!r}")
