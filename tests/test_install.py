"""A non-editable install works outside the source tree: every named model builds from the
configs that ship in the package, the zoo lists its models and loads a shipped one offline,
and the tools import the installed copy."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_ALL = """
import os, sys
import cakes_video
from cakes_video import build_model, load_config
from cakes_video.config import config_names
from cakes_video.engine.demo import DEFAULT_CONFIG

site = sys.argv[1]
assert cakes_video.__file__.startswith(site), cakes_video.__file__
names = [n for n in config_names() if not n.startswith(("base/", "channel_configs/"))]
for name in names:
    cfg = load_config(name)
    assert build_model(cfg).head.fc.out_features == cfg.MODEL.NUM_CLASSES, name
cfg = load_config("r3d_18", ["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.CONV_CONFIG", "cakes_18_block16"])
assert build_model(cfg).layer1[0].conv1.counts == {"kxkxk": 16, "1xkxk": 32, "kx1x1": 16}
load_config(DEFAULT_CONFIG)
assert cakes_video.list_models()[:3] == ["r3d_18", "mc3_18", "r2plus1d_18"], cakes_video.list_models()
model = cakes_video.get_model("synthetic_cakes_r10_w32")  # shipped inside the package: no network
assert model.head.fc.out_features == len(cakes_video.get_weights("synthetic_cakes_r10_w32").class_names()) == 10
print("built", len(names))
"""


@pytest.mark.slow
def test_non_editable_install_builds_every_named_model_and_a_shipped_zoo_model_from_anywhere(tmp_path):
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    shutil.copytree(os.path.join(REPO, "cakes_video"), src / "cakes_video",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "CAKES_VIDEO_OFFLINE": "1", "CAKES_VIDEO_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", BUILD_ALL, str(site)], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["built", "22"]  # 12 model configs, the demo, 3 in synthetic/, 6 in finetune/
    # a tool run from elsewhere finds a packaged config and refuses, naming the key, to test random weights
    tool = subprocess.run([sys.executable, os.path.join(REPO, "tools", "test_net.py"), "--cfg", "r3d_18",
                           "OUTPUT_DIR", str(elsewhere / "run")], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert tool.returncode == 1, tool.stderr
    assert "TEST.CHECKPOINT_FILE" in tool.stderr and str(site) not in tool.stderr  # one line, no traceback
