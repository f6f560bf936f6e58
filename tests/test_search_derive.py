"""Derivation of a CAKES network from supernet scores (made up here): top-C, budgets, the latency
table, and the exported configs and report."""
import json
import random

import pytest
import torch

from cakes_video.config import ConfigError, merge_config
from cakes_video.config_loader import load_config
from cakes_video.models import build_model
from cakes_video.models.complexity import count_gflops, count_params
from cakes_video.models.resnet3d import cakes_layer_widths
from cakes_video.models.subkernels import load_channel_config, validate_channel_config
from cakes_video.search import costs, derive, export, latency

CANDIDATES = ["kxkxk", "1xkxk", "kx1x1"]


def tiny_cfg(depth=10, width=8, *overrides):
    return merge_config(None, ["MODEL.DEPTH", str(depth), "MODEL.BASE_WIDTH", str(width), "MODEL.NUM_CLASSES", "5",
                               "DATA.NUM_FRAMES", "4", "DATA.TEST_CROP_SIZE", "32", *overrides])


def with_budget(cfg, kind, budget, *overrides):
    cfg = cfg.clone()
    cfg.merge_from_list(["SEARCH.DERIVE.BUDGET_KIND", kind, "SEARCH.DERIVE.BUDGET", float(budget), *overrides])
    return cfg


def made_up_scores(depth, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{s: torch.rand(w, generator=g) for s in CANDIDATES} for w, _ in cakes_layer_widths(depth, width)]


def random_config(layers, step, rng):
    config = []
    for layer in layers:
        chunks = layer.width // step
        total = chunks if layer.must_fill else rng.randint(1, chunks)
        a = rng.randint(0, total)
        b = rng.randint(0, total - a)
        counts = {"kxkxk": a * step, "1xkxk": b * step, "kx1x1": (total - a - b) * step}
        config.append({s: n for s, n in counts.items() if n})
    return config


@pytest.mark.parametrize("depth,width,stem", [(10, 8, "3x7x7"), pytest.param(50, 4, "1x7x7", marks=pytest.mark.slow)])
def test_analytic_cost_equals_count_params_and_fvcore(depth, width, stem):
    cfg = tiny_cfg(depth, width, "MODEL.STEM", stem, "MODEL.TEMPORAL_STRIDES", "[1, 1, 2, 2]",
                   "DATA.NUM_FRAMES", "2", "DATA.TEST_CROP_SIZE", "16")
    shape = costs.derive_input_shape(cfg)
    assert shape == (3, 2, 16, 16)
    layers = costs.searched_layers(cfg, shape)
    assert [(la.width, la.must_fill) for la in layers] == cakes_layer_widths(depth, width)
    reference = costs.granular_uniform_config(layers, CANDIDATES, 1)
    params = costs.analytic_params(cfg, layers, reference)
    gflops = costs.analytic_gflops(cfg, layers, reference, shape)
    rng = random.Random(depth)
    for _ in range(2):
        config = random_config(layers, 1, rng)
        model = costs.build_derived_model(cfg, config)
        assert params.total(config) == count_params(model)
        assert gflops.total(config) == pytest.approx(count_gflops(model, shape)["gflops"], rel=1e-12)


def test_top_c_keeps_every_width_even_when_scores_tie():
    widths = cakes_layer_widths(10, 8)
    tied = [{s: torch.ones(w) for s in CANDIDATES} for w, _ in widths]
    config = derive.channel_config_of(derive.top_c(tied, widths, CANDIDATES))
    assert [sum(c.values()) for c in config] == [w for w, _ in widths]
    assert config[0] == {"kxkxk": 8}  # ties go to the earlier candidate, then the lower channel


def test_top_c_keeps_the_largest_scores():
    widths = [(4, False), (4, True)]
    scores = [{"kxkxk": torch.tensor([9., 1, 1, 8]), "1xkxk": torch.tensor([7., 0, 0, 0]),
               "kx1x1": torch.tensor([0., 6, 0, 0])},
              {"kxkxk": torch.tensor([1., 5, 0, 0]), "1xkxk": torch.tensor([2., 0, 3, 0]),
               "kx1x1": torch.tensor([0., 0, 0, 1])}]
    selection = derive.top_c(scores, widths, CANDIDATES)
    assert selection[0] == {"kxkxk": [0, 3], "1xkxk": [0], "kx1x1": [1]}  # 9, 8, 7, 6 of 12 pairs
    # a residual layer: contiguous blocks in vocabulary order, of the best total (5 + 1, 3, 1)
    assert selection[1] == {"kxkxk": [0, 1], "1xkxk": [2], "kx1x1": [3]}


def test_top_c_granularity_gives_multiples():
    widths = cakes_layer_widths(10, 16)
    config = derive.channel_config_of(derive.top_c(made_up_scores(10, 16), widths, CANDIDATES, granularity=8))
    validate_channel_config(config, widths)
    assert all(n % 8 == 0 for counts in config for n in counts.values())
    assert [sum(c.values()) for c in config] == [w for w, _ in widths]


@pytest.mark.parametrize("depth,kind,budget", [(10, "params", 30000), pytest.param(50, "gflops", 0.012, marks=pytest.mark.slow),
                                               (50, "params", 200000)])
def test_budget_is_hit_within_two_percent_never_above(depth, kind, budget):
    cfg = with_budget(tiny_cfg(depth, 8), kind, budget, "SEARCH.DERIVE.GRANULARITY", 4)
    result = derive.derive(cfg, made_up_scores(depth, 8))
    widths = cakes_layer_widths(depth, 8)
    validate_channel_config(result.channel_config, widths)
    assert all(n % 4 == 0 for counts in result.channel_config for n in counts.values())
    for layer, (width, must_fill) in zip(result.selection, widths):
        kept = [j for idx in layer.values() for j in idx]
        assert all(0 <= j < width for j in kept) and all(idx == sorted(idx) for idx in layer.values())
        if must_fill:
            assert sorted(kept) == list(range(width))
    model = costs.build_derived_model(cfg, result.channel_config)
    figure = count_params(model) if kind == "params" else count_gflops(model, (3, 4, 32, 32))["gflops"]
    assert 0.98 * budget <= figure <= budget
    assert result.predicted == pytest.approx(figure, rel=1e-12)


def test_budget_layers_shrink_below_width_only_where_allowed():
    cfg = with_budget(tiny_cfg(10, 8), "params", 25000)
    config = derive.derive(cfg, made_up_scores(10, 8)).channel_config
    totals = [sum(c.values()) for c in config]
    widths = cakes_layer_widths(10, 8)
    assert all(t == w for t, (w, must_fill) in zip(totals, widths) if must_fill)
    assert any(t < w for t, (w, must_fill) in zip(totals, widths) if not must_fill)


def test_impossible_budget_names_the_budget_and_the_smallest_network():
    """Checked without scores, so before a search starts."""
    cfg = with_budget(tiny_cfg(10, 8), "gflops", 1e-5, "SEARCH.DERIVE.GRANULARITY", 4)
    with pytest.raises(ConfigError, match=r"SEARCH.DERIVE.BUDGET: gflops=1e-05 is below the smallest reachable "
                                          r"network, 0\.00[0-9]+ GFLOPs \(SEARCH.DERIVE.GRANULARITY 4\)"):
        derive.budget_cost(cfg)
    with pytest.raises(ConfigError, match=r"params=1e\+07 is above the largest reachable network"):
        derive.budget_cost(with_budget(tiny_cfg(10, 8), "params", 1e7))


def test_bad_budget_kind_and_scores_are_named():
    cfg = with_budget(tiny_cfg(), "watts", 1.0)
    with pytest.raises(ConfigError, match="SEARCH.DERIVE.BUDGET_KIND"):
        derive.check_derive_config(cfg)
    scores = made_up_scores(10, 8)
    scores[2] = {"kxkxk": scores[2]["kxkxk"]}
    with pytest.raises(ValueError, match="layer 2 has candidates"):
        derive.top_c(scores, cakes_layer_widths(10, 8), CANDIDATES)


def latency_cfg(out_dir, *overrides):
    return tiny_cfg(10, 4, "DATA.TEST_CROP_SIZE", "16", "DATA.NUM_FRAMES", "2", "SEARCH.DERIVE.GRANULARITY", "4",
                    "SEARCH.LATENCY.REPEATS", "1", "SEARCH.LATENCY.THREADS", "1", "OUTPUT_DIR", str(out_dir),
                    *overrides)


def latency_model(cfg):
    shape = costs.derive_input_shape(cfg)
    layers = costs.searched_layers(cfg, shape)
    reference = costs.granular_uniform_config(layers, CANDIDATES, cfg.SEARCH.DERIVE.GRANULARITY)
    return latency.latency_cost(cfg, layers, shape, reference, derive.no_progress)


def fake_time_ms(module, x, threads, repeats):
    """A deterministic stand-in for timing (the tests check the arithmetic, not this machine's
    load): work in proportion to the weights times the input's voxels, plus a call's overhead."""
    return 1e-6 * sum(p.numel() for p in module.parameters()) * x[0, 0].numel() + 0.05


@pytest.fixture(autouse=True)
def deterministic_timing(monkeypatch):
    monkeypatch.setattr(latency, "time_ms", fake_time_ms)


@pytest.fixture(scope="module")
def latency_dir(tmp_path_factory):
    """A folder holding the latency table of :func:`latency_cfg`, built once for this module."""
    folder = tmp_path_factory.mktemp("latency")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(latency, "time_ms", fake_time_ms)
        latency_model(latency_cfg(folder))
    return folder


def test_latency_prediction_adds_the_table_entries():
    layers = [costs.SearchedLayer("a", 8, False, 3, False, (1, 1, 1), (2, 4, 4), (2, 4, 4), 16, 3),
              costs.SearchedLayer("b", 8, True, 8, True, (1, 1, 1), (2, 4, 4), (2, 4, 4), 0, 3)]
    table = {"rest_ms": 1.0, "layers": [
        {"counts": [4, 8], "in_channels": [3], "ms": {"kxkxk": [[2.0], [3.0]], "kx1x1": [[0.5], [0.75]]},
         "tail_ms": [0.25, 0.5]},
        {"counts": [4, 8], "in_channels": [4, 8], "ms": {"kxkxk": [[1.0, 2.0], [2.0, 4.0]],
                                                         "kx1x1": [[0.2, 0.4], [0.3, 0.5]]}, "tail_ms": None}]}
    cost = latency.table_cost(layers, table)
    # layer a: kxkxk 4 + kx1x1 4 + tail of 8; layer b at 8 inputs: kxkxk 4 + kx1x1 4
    assert cost.total([{"kxkxk": 4, "kx1x1": 4}, {"kxkxk": 4, "kx1x1": 4}]) == pytest.approx(1 + 2.5 + 0.5 + 2.4)
    # layer b at 4 inputs (a keeps 4), and halfway at 6 would interpolate
    assert cost.total([{"kx1x1": 4}, {"kxkxk": 8}]) == pytest.approx(1 + 0.5 + 0.25 + 2.0)
    assert cost.layer_cost(1, {"kxkxk": 8}, 6) == pytest.approx(3.0)


@pytest.mark.slow
def test_latency_table_is_reused_when_its_key_matches_and_rebuilt_otherwise(latency_dir, tmp_path):
    table = json.loads((latency_dir / latency.TABLE_FILE).read_text())
    assert table["key"]["threads"] == 1 and table["key"]["torch"] == torch.__version__
    assert {"device", "dtype", "batch_size", "network", "input_shape"} <= set(table["key"])
    assert len(table["layers"]) == len(cakes_layer_widths(10, 4))
    table["rest_ms"] = 123.0  # a mark: only a reused table keeps it
    (tmp_path / latency.TABLE_FILE).write_text(json.dumps(table))
    assert latency_model(latency_cfg(tmp_path)).fixed == 123.0
    assert latency_model(latency_cfg(tmp_path, "SEARCH.LATENCY.BATCH_SIZE", "2")).fixed != 123.0
    assert json.loads((tmp_path / latency.TABLE_FILE).read_text())["key"]["batch_size"] == 2


def latency_budget(cfg, fraction):
    """A latency ``fraction`` of the way from the smallest network to the full uniform one."""
    cost = latency_model(cfg)
    full = cost.total(costs.granular_uniform_config(cost.layers, CANDIDATES, 4))
    smallest = cost.total(derive.extreme_config(cost, CANDIDATES, 4, largest=False))
    return round(smallest + fraction * (full - smallest), 4)


@pytest.mark.slow
def test_latency_budget_predicted_in_band_and_measured(latency_dir, tmp_path):
    cfg = latency_cfg(latency_dir)
    budget = latency_budget(cfg, 0.6)
    result = derive.derive(with_budget(cfg, "latency_ms", budget), made_up_scores(10, 4))
    validate_channel_config(result.channel_config, cakes_layer_widths(10, 4))
    assert result.predicted == pytest.approx(result.cost.total(result.channel_config))
    assert 0.98 * result.target <= result.predicted <= result.target
    # measured on a shared test machine: only that it was measured
    assert 0 < result.measured_latency_ms < float("inf")
    report = open(export.export(str(tmp_path), cfg, result)["report"]).read()
    assert "| latency_ms |" in report
    assert f"latency predicted {result.predicted:.3f} ms, measured {result.measured_latency_ms:.3f} ms" in report


@pytest.mark.slow
def test_latency_target_is_corrected_by_the_measurement(latency_dir, monkeypatch):
    """A device slower than its table by a factor: the next derivation aims at budget / factor and lands within 5%."""
    cfg = latency_cfg(latency_dir)
    budget = latency_budget(cfg, 0.8)
    factor = budget / latency_budget(cfg, 0.5)
    model = latency_model(cfg)
    monkeypatch.setattr(derive, "measure_network_ms", lambda cfg, config, shape: factor * model.total(config))
    result = derive.derive(with_budget(cfg, "latency_ms", budget), made_up_scores(10, 4))
    assert result.target == pytest.approx(budget / factor, rel=0.03)
    assert result.measured_latency_ms == pytest.approx(budget, rel=0.05)


def _overrating_table(cfg, monkeypatch):
    """Measurements of a device where the table overrates small networks: measured = predicted
    minus most of the smallest network's prediction (per-call overheads that do not add up)."""
    model = latency_model(cfg)
    smallest = model.total(derive.extreme_config(model, CANDIDATES, 4, largest=False))
    monkeypatch.setattr(derive, "measure_network_ms", lambda cfg, config, shape: model.total(config) - 0.8 * smallest)
    return model, smallest


@pytest.mark.slow
def test_latency_target_brackets_a_table_that_is_off_by_more_than_a_factor(latency_dir, monkeypatch):
    cfg = latency_cfg(latency_dir)
    model, smallest = _overrating_table(cfg, monkeypatch)
    budget = latency_budget(cfg, 0.5) - 0.8 * smallest  # what a mid-sized network measures
    assert budget < smallest  # below the table's smallest network: checked by measuring, not refused
    result = derive.derive(with_budget(cfg, "latency_ms", budget), made_up_scores(10, 4))
    assert result.measured_latency_ms == pytest.approx(budget, rel=0.05)


@pytest.mark.slow
def test_a_latency_budget_below_the_measured_smallest_network_is_refused(latency_dir, monkeypatch):
    cfg = latency_cfg(latency_dir)
    model, smallest = _overrating_table(cfg, monkeypatch)  # the smallest measures 0.2 x its prediction
    with pytest.raises(ConfigError, match=r"below the smallest reachable network, measured [0-9.]+ ms \(predicted"):
        derive.budget_cost(with_budget(cfg, "latency_ms", 0.1 * smallest))


@pytest.mark.slow
def test_export_round_trips_through_conv_config(tmp_path):
    cfg = with_budget(tiny_cfg(50, 8), "gflops", 0.011, "SEARCH.DERIVE.GRANULARITY", 4)
    result = derive.derive(cfg, made_up_scores(50, 8))
    paths = export.export(str(tmp_path), cfg, result)
    assert load_channel_config(paths["yaml"]) == result.channel_config
    assert json.loads(open(paths["json"]).read()) == result.channel_config
    assert open(paths["yaml"]).read().startswith("# CAKES channel config derived by cakes_video.search: budget gflops")
    expected = {k: v.shape for k, v in costs.build_derived_model(cfg, result.channel_config).state_dict().items()}
    for path in (paths["yaml"], paths["json"]):
        loaded = load_config(None, ["MODEL.DEPTH", "50", "MODEL.BASE_WIDTH", "8", "MODEL.NUM_CLASSES", "5",
                                    "MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.CONV_CONFIG", path])
        assert {k: v.shape for k, v in build_model(loaded).state_dict().items()} == expected
    model_cfg = load_config(paths["model"])
    assert model_cfg.MODEL.TEMPORAL_OP == "cakes" and model_cfg.MODEL.CAKES.CONV_CONFIG == paths["yaml"]
    assert {k: v.shape for k, v in build_model(model_cfg).state_dict().items()} == expected
    report = open(paths["report"]).read()
    assert "| layer1.0.conv2 | 8 |" in report and "| total |" in report
    assert open(paths["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
