"""Training a cached network survives being stopped: it continues from its last finished epoch and ends
with the weights, and the cache entry, of a training that was never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dnn import data, train  # noqa: E402

RECIPE = train.Recipe("lenet5", epochs=2, qat_epochs=2, seed=3)


class Stop(BaseException):
    """Stands for Ctrl-C or SIGKILL right after an epoch's checkpoint was written."""


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return data.load("digits")


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    model, info = train.trained(RECIPE, digits, tmp_path_factory.mktemp("cache"))
    return _state(model), info


@pytest.mark.parametrize("stop_at", ["float epoch 1/2", "float epoch 2/2", "QAT epoch 1/2"])
def test_a_stopped_training_continues_to_the_same_network(digits, uninterrupted, tmp_path, stop_at):
    said = []

    def progress(line):
        said.append(line)
        if line.startswith(stop_at):
            raise Stop

    with pytest.raises(Stop):
        train.trained(RECIPE, digits, tmp_path, progress=progress)
    partial = list(tmp_path.glob("*.partial"))
    assert len(partial) == 1 and not list(tmp_path.glob("*.pt"))
    said.clear()
    model, info = train.trained(RECIPE, digits, tmp_path, progress=said.append)
    assert any("continuing after epoch" in line for line in said)
    assert not any(line.startswith(stop_at) for line in said)  # the finished epoch is not trained again
    want, want_info = uninterrupted
    got = model.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    assert info["float_accuracy"] == want_info["float_accuracy"]
    assert info["qat_accuracy"] == want_info["qat_accuracy"]
    assert not list(tmp_path.glob("*.partial"))  # the finished network replaces its checkpoint
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_a_checkpoint_that_cannot_be_written_leaves_the_last_whole_one(digits, tmp_path, monkeypatch):
    """A full disk while the second epoch's checkpoint is written: the error reaches the caller, the first
    epoch's checkpoint is byte-identical, and no partial file is left."""
    saves, first = [], []
    real = torch.save

    def save(obj, path, *a, **k):
        saves.append(path)
        if len(saves) == 2:
            with open(path, "wb") as f:
                f.write(b"half")
            raise OSError(28, "No space left on device")
        real(obj, path, *a, **k)
        first.append(Path(path).read_bytes())

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match="No space left"):
        train.trained(RECIPE, digits, tmp_path)
    partial = list(tmp_path.glob("*.partial"))
    assert len(partial) == 1 and not list(tmp_path.glob("*.tmp"))
    assert partial[0].read_bytes() == first[0]
    assert torch.load(partial[0], weights_only=True)["epoch"] == 1
