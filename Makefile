# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test install clean zoo-synthetic search-synthetic search-benchmark

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) tools/demo.py --output-dir output/demo

test: install
	$(PY) -m pytest -q -n 2 tests

# The zoo's models trained here: synthetic benchmark -> train -> test -> half-precision export into
# output/zoo/ -> test of the export, which must score what the float32 checkpoint scored. Copy the
# exports into cakes_video/zoo/weights/ and their printed size, sha256 and figures into
# cakes_video/zoo/manifest.yaml.
ZOO_DATA := output/zoo/data
ZOO_DATA_OPTS = DATA.ROOT $(ZOO_DATA) DATA.TRAIN_LIST $(ZOO_DATA)/train.txt DATA.VAL_LIST $(ZOO_DATA)/val.txt \
	DATA.TEST_LIST $(ZOO_DATA)/test.txt DATA.CLASS_NAMES $(ZOO_DATA)/classes.txt \
	DATA.FLIP_LABEL_MAP $(ZOO_DATA)/flip_label_map.json TRAIN.PROGRESS_BAR False TEST.PROGRESS_BAR False
zoo-synthetic: install
	test -f $(ZOO_DATA)/meta.json || $(PY) tools/make_synthetic.py $(ZOO_DATA) --seed 0 --videos-per-class 96
	for m in cakes_r10_w32 r3d_r10_w32; do \
	  out=output/zoo/$$m; \
	  $(PY) tools/train_net.py --cfg synthetic/$$m OUTPUT_DIR $$out $(ZOO_DATA_OPTS) && \
	  $(PY) tools/export_weights.py $$out/checkpoints/best.pyth $$out/synthetic_$$m.pyth && \
	  $(PY) tools/test_net.py --cfg synthetic/$$m OUTPUT_DIR $$out/fp16 $(ZOO_DATA_OPTS) \
	    TEST.CHECKPOINT_FILE $$out/synthetic_$$m.pyth && \
	  $(PY) -c "import json, sys; a, b = (json.load(open(p)) for p in sys.argv[1:]); \
	    print('float32 top-1/top-5', a['top1'], a['top5'], '| float16', b['top1'], b['top5']); \
	    sys.exit(a['top1'] != b['top1'] or a['top5'] != b['top5'])" $$out/results.json $$out/fp16/results.json \
	  || exit 1; \
	done

# The search on the synthetic benchmark (the zoo's data): a CAKES ResNet-10 of base width 32 searched in
# performance mode, derived at 60% of the R3D ResNet-10's GFLOPs (0.241 per view), retrained from the
# supernet's kept channels and tested (output/search/search_summary.json). Rerun with another --budget to
# derive again from the same supernet.
SEARCH_BUDGET ?= gflops=0.144
SEARCH_OPTS ?=
search-synthetic: install
	test -f $(ZOO_DATA)/meta.json || $(PY) tools/make_synthetic.py $(ZOO_DATA) --seed 0 --videos-per-class 96
	$(PY) tools/search_net.py --cfg synthetic/cakes_r10_w32 --budget $(SEARCH_BUDGET) SEARCH.TRAIN_DERIVED True \
	  OUTPUT_DIR output/search $(ZOO_DATA_OPTS) $(SEARCH_OPTS)

# The hard synthetic benchmark's table (issue 13; datasets/SYNTHETIC.md): every network x 3 seeds, into
# output/search_benchmark/search_table.{json,md} and its two PNGs. A rerun reuses the finished runs.
search-benchmark: install
	$(PY) tools/benchmark_search.py --output-dir output/search_benchmark --seeds 3

clean:
	rm -rf output .pytest_cache
