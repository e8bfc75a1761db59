"""Compact binary encoding of engine state: msgpack with NumPy arrays inside.

Arrays are stored sparse (indices + values) when mostly zero, dense otherwise; both are exact,
so a restored engine continues bit for bit where the snapshot left off.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
import numpy as np

T = TypeVar("T")


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _encode_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _encode_array(arr: np.ndarray[Any, Any]) -> dict[str, Any]:
    flat = np.ascontiguousarray(arr).reshape(-1)
    nonzero = np.flatnonzero(flat)
    head = {"dtype": arr.dtype.str, "shape": list(arr.shape)}
    if nonzero.size * 2 < flat.size:
        values = flat[nonzero]
        return {**head, "idx": nonzero.astype(np.int32).tobytes(), "val": values.tobytes()}
    return {**head, "data": flat.tobytes()}


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is np.ndarray:
        return _decode_array(obj)
    raise NotImplementedError(f"cannot decode {type_}")


def _decode_array(obj: dict[str, Any]) -> np.ndarray[Any, Any]:
    dtype = np.dtype(obj["dtype"])
    shape = tuple(obj["shape"])
    if "data" in obj:
        return np.frombuffer(obj["data"], dtype=dtype).reshape(shape).copy()
    # filled through a flat view so the array returned owns its data, as the saved one did
    # (contiguous, not a view of a 1-d buffer), like the dense branch's copy
    out = np.zeros(shape, dtype=dtype)
    idx = np.frombuffer(obj["idx"], dtype=np.int32)
    out.reshape(-1)[idx] = np.frombuffer(obj["val"], dtype=dtype)
    return out


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


def encode_state(state: Any) -> bytes:
    return _encoder.encode(state)


def decode_state(blob: bytes, type_: type[T]) -> T:
    return msgspec.msgpack.decode(blob, type=type_, dec_hook=_dec_hook)
