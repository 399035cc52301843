"""The exceptions matxfer raises. All derive from :class:`MatxferError`; input problems also
derive from :class:`ValueError`, so existing ``except ValueError`` clauses keep working.

=========================  ==========================================================
class                      raised when
=========================  ==========================================================
``FormulaError``           a formula cannot be parsed (``.index``, ``.input``,
                           ``.reason`` code, ``.offset`` into the string)
``FeaturizationError``     a parsed entry cannot be featurized, or an entry is
                           missing/not a string (``.index``, ``.input``, ``.reason``)
``InvalidArgumentError``   arguments do not fit together or are outside their documented
                           bounds (unknown preset, bad shape, NaN cutoff, n_threads=0)
``LimitExceededError``     a batch would exceed a ceiling (``max_pairs``, ``max_edges``,
                           the memory budget); an ``InvalidArgumentError``
``ArgumentTypeError``      an argument of the wrong type (``n_threads=True``); a
                           ``TypeError``
``StructureError``         a crystal structure is invalid or too large (``.index``,
                           ``.name`` id or file, ``.reason``)
``StructureParseError``    a structure file cannot be parsed (``.file``, ``.line``,
                           ``.reason``)
``ModelFormatError``       a saved model, card or checkpoint is refused (``.path``,
                           ``.reason``): a pickle, a hash mismatch, a truncated file, an
                           unknown class, an incompatible schema or descriptor version
``ModelNotFoundError``     no model of that name in the library directories; a ``KeyError``
``InternalError``          a bug in matxfer's core (a caught Rust panic); please report
=========================  ==========================================================
"""

from __future__ import annotations


class MatxferError(Exception):
    """Base class of every matxfer exception."""


class FormulaError(MatxferError, ValueError):
    """A chemical formula could not be parsed."""

    index: int
    input: str
    reason: str
    offset: int


class FeaturizationError(MatxferError, ValueError):
    """An entry could not be featurized (missing value, non-string, missing element data)."""

    index: int
    input: str
    reason: str


class InvalidArgumentError(MatxferError, ValueError):
    """Arguments that do not fit together."""


class LimitExceededError(InvalidArgumentError):
    """A batch as a whole would exceed a ceiling: ``max_pairs`` / ``max_edges``, or the memory
    budget (half the available memory unless ``MATXFER_MAX_MEMORY`` is set). A single structure
    over a ceiling raises :class:`StructureError` naming it instead."""


class ArgumentTypeError(MatxferError, TypeError):
    """An argument of the wrong type (for example ``n_threads=True`` or a float count)."""


class StructureError(MatxferError, ValueError):
    """A structure is invalid (cell volume, NaN coordinates, unknown species, overlapping atoms)
    or would exceed a size limit."""

    index: int
    name: str | None
    reason: str


class StructureParseError(MatxferError, ValueError):
    """A structure file (CIF, POSCAR, XYZ, JSON lines) cannot be parsed."""

    file: str
    line: int
    reason: str


class ModelFormatError(MatxferError, ValueError):
    """A saved model, model card, strategy or checkpoint was refused before any of it was used."""

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelNotFoundError(MatxferError, KeyError):
    """No library model of that name (a ``KeyError``, as a missing key of a mapping is)."""

    def __str__(self) -> str:
        # KeyError's own str() wraps the message in quotes.
        return str(self.args[0]) if self.args else ""


class InternalError(MatxferError, RuntimeError):
    """An internal error of the Rust core (a caught panic). Please report it."""


__all__ = [
    "MatxferError",
    "FormulaError",
    "FeaturizationError",
    "InvalidArgumentError",
    "LimitExceededError",
    "ArgumentTypeError",
    "StructureError",
    "StructureParseError",
    "ModelFormatError",
    "ModelNotFoundError",
    "InternalError",
]
