"""The restricted unpickler: tensors of whole pickled models come out exact; pickled code never runs."""

import os
import pickle
import zipfile

import pytest
import torch
from torch import nn

from imreward.errors import CheckpointError
from imreward.safe_pickle import Inert, load_inert, read_pickled_state_dict


class Payload:
    """Pickles as a call to os.system: unpickling it with pickle.load would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3).half()
        self.register_buffer("scale", torch.arange(5, dtype=torch.int64))
        self.register_buffer("cache", torch.ones(2), persistent=False)
        self.payload = Payload("echo unused")


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.shared = nn.Parameter(torch.randn(6, 8)[:, ::2])  # a non-contiguous view of a larger storage
        self.logit_scale = nn.Parameter(torch.tensor(4.6))


def test_whole_module_pickle_gives_exactly_its_state_dict(tmp_path):
    torch.manual_seed(0)
    model = Model()
    path = tmp_path / "model.pth"
    torch.save(model, path)
    tensors = read_pickled_state_dict(path)
    expected = model.state_dict()
    assert list(tensors) == list(expected)
    for key, value in expected.items():
        assert tensors[key].dtype == value.dtype and torch.equal(tensors[key], value), key
    assert "blocks.0.cache" not in tensors


def test_pickled_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.ones(2), "evil": Payload(f"touch {marker}")}, path)
    loaded = load_inert(path)
    assert not marker.exists()
    assert isinstance(loaded["evil"], Inert) and loaded["evil"].args == (f"touch {marker}",)
    with pytest.raises(CheckpointError, match="neither a pickled nn.Module nor a dict of tensors"):
        read_pickled_state_dict(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(f"touch {marker}")))  # the payload is live: plain pickle runs it
    assert marker.exists()


def test_state_dict_pickle_and_bad_files(tmp_path):
    state = {"a": torch.arange(6.0).view(2, 3), "b": torch.zeros(0)}
    torch.save(state, tmp_path / "state.pt")
    tensors = read_pickled_state_dict(tmp_path / "state.pt")
    assert torch.equal(tensors["a"], state["a"]) and tensors["b"].numel() == 0
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="not a torch zip archive"):
        read_pickled_state_dict(tmp_path / "plain.pkl")
    with zipfile.ZipFile(tmp_path / "empty.pth", "w") as archive:
        archive.writestr("x/readme.txt", "nothing")
    with pytest.raises(CheckpointError, match="data.pkl"):
        read_pickled_state_dict(tmp_path / "empty.pth")


def test_a_view_larger_than_its_storage_is_refused(tmp_path):
    path = tmp_path / "broadcast.pth"
    torch.save({"weight": torch.ones(1).expand(2**26)}, path)  # 4 bytes of storage; 256 MiB if copied out
    assert path.stat().st_size < 2000
    with pytest.raises(CheckpointError, match="larger than its storage"):
        read_pickled_state_dict(path)


def test_many_views_of_one_storage_cannot_multiply_it(tmp_path):
    shared = torch.zeros(1000)
    path = tmp_path / "views.pth"
    torch.save({f"view{i}": shared[:] for i in range(10)}, path)  # ten full views: 10x the storage copied out
    with pytest.raises(CheckpointError, match="times a storage"):
        read_pickled_state_dict(path)
    torch.save({"a": shared, "tied": shared}, path)  # tied weights: allowed
    assert torch.equal(read_pickled_state_dict(path)["tied"], shared)


def test_compressed_storages_are_refused(tmp_path):
    plain, packed = tmp_path / "plain.pth", tmp_path / "packed.pth"
    torch.save({"weight": torch.zeros(100_000)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert packed.stat().st_size < plain.stat().st_size / 10
    with pytest.raises(CheckpointError, match="compressed"):
        read_pickled_state_dict(packed)
