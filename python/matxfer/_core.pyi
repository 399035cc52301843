# Type stub of the compiled extension module matxfer._core (rust/matxfer-py). Private: use the
# public API in matxfer/__init__.py.
from typing import Optional

import numpy as np
import numpy.typing as npt

__version__: str

Rejected = tuple[int, str, str]

class Featurizer:
    @staticmethod
    def preset(name: str, impute_nan: Optional[bool] = None) -> Featurizer: ...
    @staticmethod
    def from_table(
        name: str,
        values: npt.NDArray[np.float64],
        columns: list[str],
        stats: list[str],
        missing: str,
    ) -> Featurizer: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def n_features(self) -> int: ...
    def featurize_list(
        self,
        formulas: list[object],
        errors: str = "raise",
        n_threads: Optional[int] = None,
        float32: bool = False,
    ) -> tuple[npt.NDArray[np.floating], list[Rejected]]: ...
    def featurize_arrow(
        self,
        data: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        validity: Optional[npt.NDArray[np.uint8]] = None,
        validity_offset: int = 0,
        errors: str = "raise",
        n_threads: Optional[int] = None,
        float32: bool = False,
    ) -> tuple[npt.NDArray[np.floating], list[Rejected]]: ...

def parse_formula(formula: str) -> dict[str, float]: ...
def element_tables() -> list[tuple[str, str]]: ...
def element_table(name: str) -> tuple[npt.NDArray[np.float64], list[str]]: ...
