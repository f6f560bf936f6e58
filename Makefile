# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test install clean zoo-synthetic

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
# cakes_video/zoo/weights/ (then update their sha256 and figures in cakes_video/zoo/manifest.yaml).
ZOO_DATA := output/zoo/data
ZOO_DATA_OPTS = DATA.ROOT $(ZOO_DATA) DATA.TRAIN_LIST $(ZOO_DATA)/train.txt DATA.VAL_LIST $(ZOO_DATA)/val.txt \
	DATA.TEST_LIST $(ZOO_DATA)/test.txt DATA.CLASS_NAMES $(ZOO_DATA)/classes.txt \
	DATA.FLIP_LABEL_MAP $(ZOO_DATA)/flip_label_map.json TRAIN.PROGRESS_BAR False TEST.PROGRESS_BAR False
zoo-synthetic: install
	test -f $(ZOO_DATA)/meta.json || $(PY) tools/make_synthetic.py $(ZOO_DATA) --seed 0 --videos-per-class 96
	for m in cakes_r10_w32 r3d_r10_w32; do \
	  $(PY) tools/train_net.py --cfg synthetic/$$m OUTPUT_DIR output/zoo/$$m $(ZOO_DATA_OPTS) && \
	  $(PY) -c "from cakes_video.checkpoint import export_weights as e; \
	    e('output/zoo/'+'$$m'+'/checkpoints/best.pyth', 'cakes_video/zoo/weights/synthetic_$$m.pyth')" && \
	  $(PY) tools/test_net.py --model synthetic_$$m OUTPUT_DIR output/zoo/$$m/zoo_test $(ZOO_DATA_OPTS) || exit 1; \
	done

clean:
	rm -rf output .pytest_cache
