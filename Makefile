# Set-up and checks. `make test` does all its own set-up: a virtual environment in .venv with the
# pinned torch/torchaudio pair and this project installed in editable mode.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lint test demo clean

install: $(STAMP)

# Re-installs only when the package definition changed; otherwise `make install` is a no-op.
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	# torch first, as an exact pair with torchaudio, so that nothing else pulls another torch.
	$(PY) -m pip install --quiet "torch==2.9.1" "torchaudio==2.9.1"
	# compat mode puts the checkout on sys.path, so packages added later need no re-install;
	# the peers extra (Distill-MOS, DNSMOS: about 11 s more from a warm registry) so that their tests run
	$(PY) -m pip install --quiet -e ".[test,peers]" --config-settings editable_mode=compat
	touch $(STAMP)

# One worker per core (at most 4); a test file stays on one worker, so its module fixtures are built once.
JOBS   ?= $(shell n=$$(getconf _NPROCESSORS_ONLN); [ $$n -gt 4 ] && n=4; echo $$n)

# ruff's settings are in pyproject.toml: pyflakes, pycodestyle (120 columns), import order, pyupgrade, bugbear
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile tests

# The whole pipeline offline on CPU: generated corpora, a tiny upstream, three variants, a table.
demo: install
	OMP_NUM_THREADS=1 bash egs/demo/run.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
