"""The fine-tuning recipes (zoo Kinetics-400 models -> UCF101 / HMDB51 split 1) and the
``zoo:NAME`` weights they start from."""
import os

import pytest
import torch

from cakes_video import load_config
from cakes_video.config import ConfigError, config_names, find_config_file
from cakes_video.engine.checkpointer import load_for_finetuning
from cakes_video.engine.testing import find_test_checkpoint
from cakes_video.models import build_model
from cakes_video.zoo import get_model, get_weights, list_models, resolve_checkpoint

RECIPES = sorted(n for n in config_names() if n.startswith("finetune/"))
CLASSES = {"ucf101": 101, "hmdb51": 51}


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAKES_VIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CAKES_VIDEO_OFFLINE", "1")


def test_every_zoo_kinetics_model_has_a_recipe_per_dataset():
    kinetics = [n for n in list_models() if get_weights(n).meta["dataset"] == "Kinetics-400"]
    assert RECIPES == sorted(f"finetune/{m}_{d}" for m in kinetics for d in CLASSES)


@pytest.mark.parametrize("name", RECIPES)
def test_a_recipe_fits_its_zoo_weights_and_says_what_to_expect(name):
    model_name, dataset = name.split("/")[1].rsplit("_", 1)
    cfg = load_config(name)
    assert cfg.MODEL.NUM_CLASSES == CLASSES[dataset] and cfg.TRAIN.CHECKPOINT_FILE == f"zoo:{model_name}"
    zoo_state = get_model(model_name, pretrained=False).state_dict()
    own = build_model(cfg).state_dict()
    assert {k: v.shape for k, v in own.items() if not k.startswith("head.")} == {
        k: v.shape for k, v in zoo_state.items() if not k.startswith("head.")}
    header = open(find_config_file(name)).read().split("_BASE_")[0]
    assert "NOT RUN HERE" in header and "Published accuracy to expect" in header
    assert f"datasets/prepare.py {dataset}" in header and f"--cfg {name} " in header


def test_zoo_names_give_the_weights_to_fine_tune_and_test(tmp_path):
    packaged = resolve_checkpoint("zoo:synthetic_r3d_r10_w32", "TRAIN.CHECKPOINT_FILE")
    assert os.path.isfile(packaged) and resolve_checkpoint("a/path.pyth", "TRAIN.CHECKPOINT_FILE") == "a/path.pyth"
    cfg = load_config("synthetic/r3d_r10_w32", ["MODEL.NUM_CLASSES", "5"])
    model = build_model(cfg)
    load_for_finetuning(model, "zoo:synthetic_r3d_r10_w32")
    shipped = get_model("synthetic_r3d_r10_w32").state_dict()
    assert torch.equal(model.state_dict()["stem.conv.weight"], shipped["stem.conv.weight"])
    assert model.head.fc.out_features == 5
    test_cfg = load_config("synthetic/r3d_r10_w32", ["TEST.CHECKPOINT_FILE", "zoo:synthetic_r3d_r10_w32"])
    assert find_test_checkpoint(test_cfg) == packaged
    with pytest.raises(ConfigError, match=r"TEST.CHECKPOINT_FILE: no zoo model 'r4d'"):
        find_test_checkpoint(load_config("synthetic/r3d_r10_w32", ["TEST.CHECKPOINT_FILE", "zoo:r4d"]))
