"""The one checkpoint schema: atomic save, weights_only load, strict key report."""
import pytest
import torch
from torch import nn

from cakes_video.checkpoint import CheckpointError, export_weights, load_checkpoint, load_model_state, save_checkpoint


def _net():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_roundtrip_keeps_fields(tmp_path):
    net = _net()
    path = save_checkpoint(str(tmp_path / "a" / "m.pyth"), net.state_dict(), epoch=3, cfg="X: 1\n")
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["cfg"] == "X: 1\n"
    other = _net()
    load_model_state(other, ckpt["model"])
    assert torch.equal(other[0].weight, net[0].weight)


def test_crash_mid_save_keeps_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "m.pyth")
    save_checkpoint(path, _net().state_dict(), epoch=1)

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, _net().state_dict(), epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pyth"]  # no temporary left behind


def test_foreign_file_is_rejected_by_name(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(_net().state_dict(), path)
    with pytest.raises(CheckpointError, match="plain.pth"):
        load_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(str(tmp_path / "missing.pyth"))


def test_mismatch_lists_missing_unexpected_and_misshaped_keys():
    state = _net().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["1.running_mean"]
    state["0.weight"] = torch.zeros(5, 4)
    net = _net()
    before = net[0].weight.clone()
    with pytest.raises(CheckpointError) as err:
        load_model_state(net, state, source="bad.pyth")
    msg = str(err.value)
    assert "bad.pyth" in msg and "1.running_mean" in msg and "extra.weight" in msg and "0.weight" in msg
    assert torch.equal(net[0].weight, before)  # nothing loaded partially


def test_allow_missing_prefix_for_a_new_head():
    source, target = _net(), _net()
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("1.")}
    with pytest.raises(CheckpointError, match=r"missing \(5\): 1\.weight"):
        load_model_state(target, state, allow_missing=["0."])  # a prefix that covers none of the missing keys
    with torch.no_grad():
        target[1].weight.uniform_(2.0, 3.0)  # unlike source's, so a load of it would show
    own = target[1].weight.clone()
    load_model_state(target, state, allow_missing=["1."])
    assert torch.equal(target[0].weight, source[0].weight)  # the kept keys loaded
    assert torch.equal(target[1].weight, own)  # the allowed-missing part keeps its own values


def test_half_precision_export_holds_the_model_state_alone_and_loads_into_a_float32_model(tmp_path):
    net = _net().eval()
    with torch.no_grad():
        net[1].running_var.uniform_(0.5, 2.0)
    trained = save_checkpoint(str(tmp_path / "best.pyth"), net.state_dict(), epoch=3,
                              cfg="MODEL:\n  DEPTH: 10\nDATA:\n  ROOT: /my/data\n",
                              optimizer={"lr": 0.1}, metrics={"val_top1": 50.0})
    shipped = export_weights(trained, str(tmp_path / "shipped.pyth"))
    stored = torch.load(shipped, weights_only=True)
    assert set(stored) == {"format", "model", "half", "model_cfg"} and stored["half"] is True
    assert stored["model_cfg"].strip() == "DEPTH: 10"  # the MODEL node alone: no data paths ship
    assert stored["model"]["0.weight"].dtype == torch.float16
    assert stored["model"]["1.num_batches_tracked"].dtype == torch.int64
    state = load_checkpoint(shipped)["model"]
    assert all(v.dtype == torch.float32 for k, v in state.items() if k != "1.num_batches_tracked")
    assert all(torch.equal(v, net.state_dict()[k].half().to(v.dtype)) for k, v in state.items())
    model = _net().eval()
    load_model_state(model, state, source=shipped)
    x = torch.randn(2, 4)
    assert model[0].weight.dtype == torch.float32 and torch.allclose(model(x), net(x), atol=1e-2)


def test_full_precision_export_keeps_the_weights_and_float16_overflow_is_refused(tmp_path):
    net = _net()
    trained = save_checkpoint(str(tmp_path / "best.pyth"), net.state_dict(), epoch=1)
    state = load_checkpoint(export_weights(trained, str(tmp_path / "full.pyth"), half=False))["model"]
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        net[1].running_var[0] = 1e5
    huge = save_checkpoint(str(tmp_path / "huge.pyth"), net.state_dict())
    with pytest.raises(CheckpointError, match="huge.pyth.*float16 range: 1.running_var"):
        export_weights(huge, str(tmp_path / "half.pyth"))
    assert not (tmp_path / "half.pyth").exists()
