# biores: two commands do all set-up on a fresh machine (Python 3.11 + make):
#   make demo   the main job (offline demo)
#   make test   the whole test suite
# Both create .venv and install the package with its test extras when missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.biores-installed
# torch/torchvision are pinned to the builds this project is tested with.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= biores_demo
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test]"
	# the original LLaVA package pins ancient versions: its code only, biores shims the rest
	$(PY) -m pip install --quiet --no-deps llava-torch==1.2.2.post1
	# DeepSpeed's own config validation is tested (tests/test_deepspeed_configs.py); no kernels are built
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet deepspeed==0.19.8
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/biores demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the rules live in pyproject.toml ([tool.ruff]): lint and the formatter's check
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# every bench compares against its reference in the same run and ends with a SUMMARY line
bench: $(STAMP)
	$(PY) bench/processor_throughput.py
	$(PY) bench/packed_vision.py
	$(PY) bench/equal_runs.py
	$(PY) bench/train_step.py
	$(PY) bench/eval_throughput.py
	$(PY) bench/slide_read.py
	$(PY) bench/gpu_attention.py --quick
	bash bench/gpu_check.sh || true  # reports "did not run" without a GPU

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache build *.egg-info
