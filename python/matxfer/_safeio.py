"""Loading without unpickling: JSON for structure, safetensors for arrays, sha256 for integrity.

Every file matxfer reads back (library models, ``matxfer.nn.save_model`` directories, trainer
checkpoints, saved transfer strategies) goes through this module. Nothing here calls ``pickle``,
``torch.load`` or ``numpy.load(allow_pickle=True)``: a file is either valid JSON / a valid
safetensors file whose hash matches the one recorded beside it, or it is refused with a
:class:`~matxfer.exceptions.ModelFormatError` naming the file and the reason, before any of its
content is used.

The tree codec (``encode_tree`` / ``decode_tree``) turns nested dicts, lists, tuples, numbers,
strings and arrays (numpy or torch) into one JSON document plus a flat ``{name: array}`` map for
safetensors; it is how optimizer and scheduler states are stored without pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .exceptions import ModelFormatError

__all__ = [
    "sha256_file",
    "sha256_bytes",
    "read_json",
    "write_json",
    "read_safetensors_numpy",
    "write_safetensors_numpy",
    "encode_tree",
    "decode_tree",
]

#: JSON documents (cards, checkpoint metadata) above this size are refused unread.
MAX_JSON_BYTES = 64 << 20
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip container (its data.pkl is a pickle)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sniff(path: Path, head: bytes) -> Optional[str]:
    if head[:2] in _PICKLE_MAGIC:
        return "it is a Python pickle, which matxfer never loads (unpickling can run arbitrary code)"
    if head[:4] == _ZIP_MAGIC:
        return "it is a torch.save/zip archive (pickle inside), which matxfer never loads"
    return None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file, refusing pickles, oversized files and invalid JSON with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, f"{what} is missing")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ModelFormatError(path, f"{what} is {size} bytes, above the {MAX_JSON_BYTES} byte limit")
    data = path.read_bytes()
    reason = _sniff(path, data[:8])
    if reason:
        raise ModelFormatError(path, reason)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFormatError(path, f"{what} is not valid UTF-8 JSON ({err})") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON with sorted keys and a trailing newline (same object, same bytes); atomic."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_hash(path: Path, expected: Optional[str]) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFormatError(
            path, f"sha256 {actual[:16]}... does not match the recorded {str(expected)[:16]}... (tampered, truncated or replaced)"
        )


def _open_checked(path: Path, expected_sha256: Optional[str]) -> None:
    if not path.is_file():
        raise ModelFormatError(path, "weights file is missing")
    with open(path, "rb") as fh:
        head = fh.read(8)
    reason = _sniff(path, head)
    if reason:
        raise ModelFormatError(path, reason)
    _check_hash(path, expected_sha256)


def read_safetensors_numpy(path: str | os.PathLike, expected_sha256: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Arrays of a safetensors file, after checking its sha256 (when given) and its structure."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    _open_checked(path, expected_sha256)
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, OSError) as err:
        raise ModelFormatError(path, f"not a valid safetensors file ({err})") from None


def read_safetensors_torch(path: str | os.PathLike, expected_sha256: Optional[str] = None, device: str = "cpu"):
    """Like :func:`read_safetensors_numpy` but returns torch tensors (any dtype, bf16 included)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    _open_checked(path, expected_sha256)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, ValueError, OSError, RuntimeError) as err:
        raise ModelFormatError(path, f"not a valid safetensors file ({err})") from None


def read_safetensors_metadata(path: str | os.PathLike) -> Dict[str, str]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    _open_checked(path, None)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, ValueError, OSError) as err:
        raise ModelFormatError(path, f"not a valid safetensors file ({err})") from None


def write_safetensors_numpy(path: str | os.PathLike, arrays: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None) -> str:
    """Write arrays (contiguous copies) atomically; returns the file's sha256."""
    from safetensors.numpy import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return sha256_file(path)


def write_safetensors_torch(path: str | os.PathLike, tensors: Dict[str, Any], metadata: Optional[Dict[str, str]] = None) -> str:
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return sha256_file(path)


# -- tree codec ----------------------------------------------------------------------------------
Hook = Callable[[Any, Dict[str, Any], str], Optional[Any]]


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and type(value).__name__ in ("Tensor", "Parameter")


def encode_tree(value: Any, arrays: Dict[str, Any], prefix: str = "t", hook: Optional[Hook] = None) -> Any:
    """JSON-able form of ``value``; arrays and tensors go into ``arrays`` under unique names.

    ``hook(value, arrays, prefix)`` may return an encoding for types this codec does not know
    (strategies, models, scikit-learn heads); anything else unknown raises ``TypeError``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(value, np.ndarray):
        key = f"{prefix}"
        arrays[key] = value
        return {"__ndarray__": key}
    if _is_tensor(value):
        key = f"{prefix}"
        arrays[key] = value.detach()
        return {"__tensor__": key, "requires_grad": bool(value.requires_grad)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_tree(v, arrays, f"{prefix}.{i}", hook) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_tree(v, arrays, f"{prefix}.{i}", hook) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__dict__": {k: encode_tree(v, arrays, f"{prefix}.{k}", hook) for k, v in value.items()}}
        if all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in value):
            return {"__intdict__": [[int(k), encode_tree(v, arrays, f"{prefix}.{k}", hook)] for k, v in value.items()]}
        raise TypeError(f"{prefix}: dict keys must all be str or all int")
    if hook is not None:
        encoded = hook(value, arrays, prefix)
        if encoded is not None:
            return encoded
    raise TypeError(f"{prefix}: cannot store a {type(value).__module__}.{type(value).__qualname__} safely")


def decode_tree(value: Any, arrays: Dict[str, Any], hook: Optional[Callable[[dict, Dict[str, Any]], Tuple[bool, Any]]] = None) -> Any:
    """Inverse of :func:`encode_tree`. ``hook(node, arrays)`` returns ``(True, decoded)`` for the
    tagged nodes it owns; an unknown tag is an error, never a lookup of arbitrary code."""
    if isinstance(value, list):
        return [decode_tree(v, arrays, hook) for v in value]
    if not isinstance(value, dict):
        return value
    if "__dict__" in value:
        return {k: decode_tree(v, arrays, hook) for k, v in value["__dict__"].items()}
    if "__tuple__" in value:
        return tuple(decode_tree(v, arrays, hook) for v in value["__tuple__"])
    if "__intdict__" in value:
        return {int(k): decode_tree(v, arrays, hook) for k, v in value["__intdict__"]}
    if "__float__" in value:
        text = value["__float__"]
        if text not in ("inf", "-inf", "nan"):
            raise ValueError(f"invalid float {text!r}")
        return float(text)
    if "__ndarray__" in value:
        arr = arrays[value["__ndarray__"]]
        return np.array(arr) if not _is_tensor(arr) else arr.numpy().copy()
    if "__tensor__" in value:
        import torch

        t = arrays[value["__tensor__"]]
        t = torch.from_numpy(np.array(t)) if isinstance(t, np.ndarray) else t.clone()
        return t.requires_grad_(bool(value.get("requires_grad", False))) if t.is_floating_point() else t
    if hook is not None:
        owned, decoded = hook(value, arrays)
        if owned:
            return decoded
    raise ValueError(f"unknown tagged node {sorted(value)[:3]}")
