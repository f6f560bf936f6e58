"""The search as one run (engine.search.search, tools/search_net.py): supernet, derivation under a
budget, the summary and files, the derived network trained from the supernet's kept channels;
bad budgets refused before any training."""
import json
import os
import sys

import pytest
import torch
from test_engine_fakes import FakeLoaderFn, tiny_cfg

from cakes_video import load_config
from cakes_video.config import ConfigError
from cakes_video.engine.cli import UsageError
from cakes_video.engine.search import SUMMARY_FILE, derived_network, search
from cakes_video.models import build_model
from cakes_video.models.complexity import count_params
from cakes_video.search.derive import Derivation, channel_config_of, derive, top_c
from cakes_video.search.build import build_supernet
from cakes_video.models.resnet3d import cakes_layer_widths

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import search_net  # noqa: E402

CANDIDATES = ["kxkxk", "1xkxk", "kx1x1"]


def _cfg(out, *overrides):
    return tiny_cfg(out, "MODEL.DEPTH", 10, "MODEL.BASE_WIDTH", 4, "DATA.TRAIN_CROP_SIZE", 16,
                    "DATA.TEST_CROP_SIZE", 16, "SOLVER.MAX_EPOCH", 1, "SEARCH.MODE", "cost", *overrides,
                    arch="resnet3d")


@pytest.mark.slow
def test_a_search_derives_under_its_budget_trains_the_derived_network_and_reruns_on_its_supernet(tmp_path):
    budget = 0.8 * count_params(build_supernet(_cfg(tmp_path / "probe")).eval()) / 3  # about a uniform CAKES-10
    cfg = _cfg(tmp_path / "run", "SEARCH.DERIVE.BUDGET_KIND", "params", "SEARCH.DERIVE.BUDGET", budget,
               "SEARCH.TRAIN_DERIVED", True, "DATA.TEST_LIST", "fake", "SEARCH.LATENCY.REPEATS", 1)
    summary = search(cfg, FakeLoaderFn(num_videos=8))
    assert json.load(open(tmp_path / "run" / SUMMARY_FILE)) == json.loads(json.dumps(summary))
    assert 0.98 * budget <= summary["params"] <= budget and summary["budget"] == {"kind": "params", "value": budget}
    assert summary["gflops"] > 0 and summary["latency_ms"] > 0 and 0 <= summary["top1"] <= 100
    derived = build_model(load_config(summary["derived_model_config"]))
    assert count_params(derived) == summary["params"]
    for key in ("derived_config", "derived_config_json", "report", "plot"):
        assert os.path.getsize(summary[key]) > 0
    assert os.listdir(os.path.join(summary["derived_run"], "checkpoints"))
    # another budget on the same trained supernet: no supernet epoch reruns, another network
    again = search(load_config(str(tmp_path / "run" / "config.yaml"), ["SEARCH.DERIVE.BUDGET", budget * 0.7,
                                                                       "SEARCH.TRAIN_DERIVED", False]),
                   FakeLoaderFn(num_videos=8))
    assert again["supernet_checkpoint"] == summary["supernet_checkpoint"] and again["params"] <= 0.7 * budget
    assert os.path.dirname(again["derived_config"]) != os.path.dirname(summary["derived_config"])  # beside it
    assert os.path.isfile(os.path.join(os.path.dirname(summary["derived_config"]), SUMMARY_FILE))


def test_the_derived_network_starts_from_the_trained_supernets_kept_channels(tmp_path):
    cfg = _cfg(tmp_path)
    supernet = build_supernet(cfg)
    for p in supernet.parameters():  # "trained": anything but the initialisation
        p.data.normal_()
    checkpoint = str(tmp_path / "supernet.pyth")
    from cakes_video.checkpoint import save_checkpoint
    save_checkpoint(checkpoint, supernet.state_dict())
    widths = cakes_layer_widths(10, 4)
    scores = [{s: torch.rand(w) for s in CANDIDATES} for w, _ in widths]
    selection = top_c(scores, widths, CANDIDATES)
    derivation = Derivation(selection, channel_config_of(selection), "", 0.0)
    inherited = derived_network(cfg, derivation, checkpoint)
    first = next(s for s in CANDIDATES if selection[0][s])
    rows = supernet.state_dict()[f"layer1.0.conv1.convs.{CANDIDATES.index(first)}.weight"][selection[0][first]]
    assert torch.equal(inherited.layer1[0].conv1.convs[0].weight, rows)
    cfg_inflate = _cfg(tmp_path, "SEARCH.DERIVE.INIT", "inflate")
    assert not torch.equal(derived_network(cfg_inflate, derivation, checkpoint).layer1[0].conv1.convs[0].weight, rows)


def test_an_impossible_budget_fails_before_the_search_naming_the_smallest_network(tmp_path, caplog):
    cfg = _cfg(tmp_path, "SEARCH.DERIVE.BUDGET_KIND", "params", "SEARCH.DERIVE.BUDGET", 10.0)
    with pytest.raises(ConfigError, match=r"SEARCH.DERIVE.BUDGET: params=10 is below the smallest reachable"):
        search(cfg, FakeLoaderFn(num_videos=8))
    assert not os.path.exists(tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="SEARCH.DERIVE.INIT"):
        search(_cfg(tmp_path, "SEARCH.DERIVE.INIT", "copy"), FakeLoaderFn(num_videos=8))


def test_the_tool_reads_its_budget_flag():
    assert search_net.budget_overrides("gflops=2.5") == ["SEARCH.DERIVE.BUDGET_KIND", "gflops",
                                                         "SEARCH.DERIVE.BUDGET", "2.5"]
    assert search_net.budget_overrides("params=30000")[-1] == "30000.0"  # a float, as the key is
    for bad in ("gflops", "gflops=lots", "=5"):
        with pytest.raises(UsageError, match="--budget"):
            search_net.main(["--cfg", "r3d_18", "--budget", bad])


def test_candidates_listed_in_any_order_are_inherited_exactly(tmp_path, caplog):
    """A CAKES layer lays its groups out in vocabulary order, whatever SEARCH.CANDIDATES says: the
    residual layers' blocks follow that order, so no channel lands at another position."""
    cfg = _cfg(tmp_path, "SEARCH.CANDIDATES", ["kx1x1", "kxkxk"])
    checkpoint = str(tmp_path / "supernet.pyth")
    from cakes_video.checkpoint import save_checkpoint
    save_checkpoint(checkpoint, build_supernet(cfg).state_dict())
    widths = cakes_layer_widths(10, 4)
    scores = [{"kx1x1": torch.arange(w, 0, -1.0), "kxkxk": torch.arange(w) * 1.0} for w, _ in widths]
    derivation = derive(cfg, scores)
    assert all(list(c) == ["kxkxk", "kx1x1"] for c in derivation.channel_config if len(c) == 2)
    with caplog.at_level("WARNING"):
        derived_network(cfg, derivation, checkpoint)
    assert "contiguous" not in caplog.text
