# Two commands on a fresh machine:
#   make demo   set up .venv, then train the teacher and the student of the main job and print the evaluation
#   make test   set up .venv, then run the test suite
# The CPU build of torch is installed first (override: make TORCH="torch==2.13.0 --index-url ..." demo).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= all
TEST_WORKERS ?= 2
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(PY) -m macflow fit --config configs/teacher.yaml
	$(PY) -m macflow fit --config configs/student.yaml
	$(PY) -m macflow validate --config configs/student.yaml --ckpt_path runs/main/student/seed0/final.ckpt

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS)   # pytest-xdist: one test process per core

clean:
	rm -rf runs lightning_logs
