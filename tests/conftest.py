import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("MATXFER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()
STRUCTURES = SHARED / "structures"
CIFS = SHARED / "cif"


@pytest.fixture(scope="session")
def shared_structures():
    if not STRUCTURES.is_dir():
        pytest.skip("shared structure datasets not available")
    return STRUCTURES
