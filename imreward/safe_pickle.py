"""Read the tensors of a torch checkpoint that pickles a whole model, without running its code.

Some checkpoints (MPS's ``MPS_overall_checkpoint.pth``) are ``torch.save(model)``: the pickle
names the model's classes, and ``torch.load`` would import and call them, which runs whatever code
the file points at. ``torch.load(weights_only=True)`` refuses such files. This unpickler resolves
every global to an inert stand-in that only records its arguments and state; the one thing it
builds for real is tensors, from the archive's raw storages. The module tree of stand-ins is then
walked like ``nn.Module.state_dict()``. Only plain containers (OrderedDict, set, frozenset) and
torch dtypes are taken as the real objects.

What a file can make the reader allocate is bounded by the file's size: storages must be stored
uncompressed (as ``torch.save`` writes them; a deflated member could expand a thousandfold), a
tensor may not have more elements than the storage it views (a stride-0 view of 4 bytes could
otherwise ask for gigabytes when copied out), and all views of one storage together may not
copy out more than ``MAX_VIEW_COPIES`` times it (tied weights share a storage).
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from imreward.errors import CheckpointError

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}
MAX_VIEW_COPIES = 4


class Inert:
    """Stands in for any class or function a pickle names: calling, constructing or restoring
    state only records the arguments."""

    pickled_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


class StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class StorageView:
    """The storages of one archive, and how many of their elements views have copied out."""

    def __init__(self) -> None:
        self.copied: dict[int, int] = {}

    def __call__(self, storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
        size, stride = tuple(size), tuple(stride)
        elements = math.prod(size)
        if elements > storage.numel():
            raise CheckpointError(f"a tensor of shape {list(size)} views a storage of {storage.numel()} elements; "
                                  "a view larger than its storage is refused")
        copied = self.copied.get(id(storage), 0) + elements
        if copied > MAX_VIEW_COPIES * max(storage.numel(), 1):
            raise CheckpointError(f"the views of one storage of {storage.numel()} elements copy out {copied}; "
                                  f"more than {MAX_VIEW_COPIES} times a storage is refused")
        self.copied[id(storage)] = copied
        try:
            return torch.as_strided(storage, size, stride, offset).clone()
        except RuntimeError as error:  # negative sizes, a view past the storage's end
            raise CheckpointError(f"a tensor view does not fit its storage ({error})") from None


def _rebuild_parameter(data: torch.Tensor, *_: Any) -> torch.Tensor:
    return data


SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol 2 (torch.save's) writes Python 2 module names
    ("__builtin__", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch zip archive's ``data.pkl`` with every unknown global made inert."""

    def __init__(self, stream, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(stream)
        self.archive, self.prefix = archive, prefix
        self.stand_ins: dict[tuple[str, str], type] = {}
        self.storages: dict[str, torch.Tensor] = {}  # by key: each read once, however often the pickle names it
        self.rebuild_tensor = StorageView()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return self.rebuild_tensor
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(STORAGE_DTYPES[name])
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) not in self.stand_ins:
            self.stand_ins[(module, name)] = type(name, (Inert,), {"pickled_name": f"{module}.{name}"})
        return self.stand_ins[(module, name)]

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, _numel = pid
        dtype = storage_type.dtype if isinstance(storage_type, StorageType) else torch.uint8
        if key not in self.storages:
            data = bytearray(read_stored(self.archive, f"{self.prefix}/data/{key}"))
            self.storages[key] = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        return self.storages[key]


def read_stored(archive: zipfile.ZipFile, name: str) -> bytes:
    """A member written uncompressed, as ``torch.save`` writes them (so at most the file's size)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"the archive has no member {name}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"{name} is compressed; torch.save stores members uncompressed, and a compressed one "
                              "could expand far beyond the file's size")
    return archive.read(info)


def load_inert(path: str | os.PathLike) -> Any:
    """The object a ``torch.save`` zip archive holds, classes replaced by ``Inert`` stand-ins."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a torch zip archive (torch.save since 1.6); legacy pickles "
                              "are not read")
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: expected one <name>/data.pkl in the archive, found {pickles}")
        prefix = pickles[0].split("/")[0]
        stream = io.BytesIO(read_stored(archive, pickles[0]))
        return RestrictedUnpickler(stream, archive, prefix).load()


def _module_tensors(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = node.state if isinstance(node, Inert) else None
    if not isinstance(state, dict) or "_modules" not in state:
        return
    skipped = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_parameters") or {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
    for name, value in (state.get("_buffers") or {}).items():
        if isinstance(value, torch.Tensor) and name not in skipped:
            out[prefix + name] = value
    for name, child in state["_modules"].items():
        _module_tensors(child, f"{prefix}{name}.", out)


def read_pickled_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``state_dict()`` of a whole pickled ``nn.Module`` (or the tensors of a pickled dict of
    tensors), read without importing or calling anything the file names."""
    root = load_inert(path)
    if isinstance(root, dict) and all(isinstance(v, torch.Tensor) for v in root.values()):
        return dict(root)
    tensors: dict[str, torch.Tensor] = {}
    _module_tensors(root, "", tensors)
    if not tensors:
        raise CheckpointError(f"{path} holds neither a pickled nn.Module nor a dict of tensors "
                              f"(found {type(root).__name__})")
    return tensors
