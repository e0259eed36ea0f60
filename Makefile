# airflow-cluster: the two commands of the quick start are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKERS ?= 2
# Host packages the lab needs (debootstrap, systemd-nspawn, squid) and the tools the tests call.
HOST_PACKAGES := debootstrap systemd-container squid iproute2 openssh-client rsync curl

.PHONY: help host-deps venv demo lab-up lab-down lint pytest molecule test drills clean lock benchmark

help:
	@echo "make demo    lab (1 master + $(WORKERS) workers) + cluster + verify, then print URLs and credentials"
	@echo "make test    lint + pytest, the lab tests and fault drills included (the CI command)"
	@echo "make drills  the lab tests and every fault drill, the fresh-lab ones (HA, upgrade, restore) included"
	@echo "make lab-down  remove the lab"

host-deps:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing host packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/airflow-cluster: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/airflow-cluster

demo: host-deps venv
	$(BIN)/airflow-cluster lab up --workers $(WORKERS)
	$(BIN)/airflow-cluster deploy -i inventory/lab
	$(BIN)/airflow-cluster verify -i inventory/lab

lab-up: host-deps venv
	$(BIN)/airflow-cluster lab up --workers $(WORKERS)

lab-down: venv
	$(BIN)/airflow-cluster lab down

lint: venv
	$(BIN)/ruff check airflow_cluster tests plugins $(wildcard benchmarks)
	$(BIN)/ansible-lint

# With every drill `make test` takes about 46 minutes here, over CI's 40: the main lab's fault drills (marker
# "drill": reboot, kill -9, Redis/Postgres restarts, power-off, graceful stop; ~9 min) are left to `make drills`.
# The fresh lab's drills (Debian 13 with sshfs, HA, upgrade, restore) stay: they are also CI's Debian 13 coverage.
pytest: host-deps venv
	$(BIN)/pytest -q --durations=40 -m "not drill"

# The molecule scenarios converge the real playbooks on lab machines (Debian 12/13, rsync/shared). `make test` no
# longer runs one: tests/test_cli_lab.py + test_drills.py cover Debian 12 with rsync and tests/test_fresh_lab.py
# Debian 13 with sshfs (deploy, idempotence, verify), within CI's 40 minutes.
# `make molecule MOLECULE_SCENARIOS="default shared trixie trixie-shared"` runs them.
MOLECULE_SCENARIOS ?= trixie-shared

molecule: host-deps venv
	@set -e; for s in $(MOLECULE_SCENARIOS); do \
	  echo "== molecule test -s $$s"; PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $$s; done

test: lint pytest

# The lab tests: the end-to-end CLI tests and the fault drills (both also in `make test`), then the fresh-lab
# drills (HA, upgrade, restore), in that order, on fresh labs.
drills: host-deps venv
	$(BIN)/pytest -q tests/test_cli_lab.py tests/test_drills.py tests/test_fresh_lab.py

# Locks: files/locks/airflow-<version>-py<X.Y>.txt pins every package for each supported Debian's Python. They are
# resolved for the exact interpreter the nodes have (markers can depend on the patch level: redis needs
# async-timeout on Debian 12's 3.11.2, not on 3.11.3+). `make lock LOCK_DIR=/tmp/x` writes them elsewhere.
AIRFLOW_VERSION ?= 3.3.2
LOCK_PYTHONS ?= 3.11.2 3.13.5
LOCK_DIR ?= files/locks
UV_VERSION ?= 0.13.8
lock: venv
	$(BIN)/pip install -q 'uv==$(UV_VERSION)'
	@mkdir -p $(LOCK_DIR)
	@set -e; for v in $(LOCK_PYTHONS); do \
	  out=$(LOCK_DIR)/airflow-$(AIRFLOW_VERSION)-py$${v%.*}.txt; echo "== $$out (CPython $$v)"; \
	  $(BIN)/uv pip compile --quiet --native-tls files/locks/airflow-$(AIRFLOW_VERSION).in \
	    --python-version $$v --python-platform x86_64-manylinux_2_28 \
	    --custom-compile-command "make lock AIRFLOW_VERSION=$(AIRFLOW_VERSION)" -o $$out; done

# Deploy benchmarks (a)-(e) on fresh labs, side by side: see README "Benchmarks".
benchmark: host-deps venv
	$(BIN)/python benchmarks/deploy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
