# airflow-cluster: the two commands of the quick start are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKERS ?= 2
# Debian packages the control node's virtualenv needs: Debian ships venv's ensurepip apart from python3 (it brings
# python3 along). Everything pip installs into .venv comes as wheels for Debian 12's and 13's Pythons: no compiler.
VENV_PACKAGES := python3-venv
# Host packages the lab needs (debootstrap, systemd-nspawn, squid) and the tools the tests call.
LAB_PACKAGES := debootstrap systemd-container squid iproute2 openssh-client rsync curl
HOST_PACKAGES := $(VENV_PACKAGES) $(LAB_PACKAGES)

# $(call apt_install,PACKAGES): installs those of PACKAGES that dpkg does not list as installed, with apt-get as root;
# as another user it names them and stops, since apt-get would only fail.
define apt_install
@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
  missing=$$(echo $$missing); \
  if [ "$$(id -u)" != 0 ]; then \
    echo "Missing Debian packages: $$missing. Install them with: sudo apt-get install -y $$missing"; exit 1; \
  fi; \
  echo "Installing host packages: $$missing"; \
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
fi
endef

.PHONY: help host-deps venv demo lab-up lab-down lint ruff ansible-lint pytest unit molecule test drills clean lock lock-env benchmark role-readmes

help:
	@echo "make venv    the control node's virtualenv .venv/: the CLI (.venv/bin/airflow-cluster), ansible-playbook, the linters"
	@echo "             (installs $(VENV_PACKAGES) with apt if missing)"
	@echo "make host-deps  the Debian packages of the virtualenv ($(VENV_PACKAGES)) and of the lab ($(LAB_PACKAGES))"
	@echo "make demo    lab (1 master + $(WORKERS) workers) + cluster + verify, then print URLs and credentials"
	@echo "make test    ruff, then the lab tests with every fault drill and the benchmarks' short modes, with ansible-lint and the"
	@echo "             tests without a lab beside them at the lowest priority (the CI command)"
	@echo "make lint    ruff and ansible-lint; make unit: the tests without a lab"
	@echo "make drills  only the lab tests: the main lab's, its fault drills and benchmarks, then the fresh lab's drills"
	@echo "make lab-down  remove the lab"
	@echo "make lock    the project's locks files/locks/airflow-<version>-py<X.Y>.txt (AIRFLOW_VERSION=$(AIRFLOW_VERSION))"
	@echo "make lock-env INVENTORY=inventory/<env>  lock the inventory's airflow_extra_requirements/airflow_extra_wheels"
	@echo "             on top of the project's lock, into its airflow_extras_lock_dir (commit them)"
	@echo "make role-readmes  each roles/<role>/README.md from its meta/ and defaults/ (commit them; make unit checks them)"

host-deps:
	$(call apt_install,$(HOST_PACKAGES))

# The venv's Debian packages are checked only when the venv is (re)built: an existing .venv needs none of them.
$(BIN)/airflow-cluster: pyproject.toml
	$(call apt_install,$(VENV_PACKAGES))
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

lint: ruff ansible-lint

ruff: venv
	$(BIN)/ruff check airflow_cluster tests plugins $(wildcard benchmarks)

ansible-lint: venv
	$(BIN)/ansible-lint

# Every test. The lab tests run one at a time in the order tests/conftest.py sets: the quick start on stock Debian 12
# and 13 (containers), the CLI end to end, the main lab's fault drills and the benchmarks' short modes on one Debian 12
# lab, then the fresh Debian 13 lab's drills (takeover, HA, upgrade, restore). Beside them, at the lowest CPU and I/O
# priority, ansible-lint and the tests without a lab (pytest-xdist over the cores; mostly CPU-bound ansible-playbook
# runs of the preflight): the lab tests spend minutes waiting on the cluster (heartbeat timeouts, alerts, drained
# tasks), and these use the idle cores then instead of running first (tests/at_idle_priority.sh: a control group of
# idle CPU weight, since nice alone does not outrank the lab machines). Their report follows the lab tests'; any
# failure fails the target. `make lint` and `make unit` run them alone. CI's limit is 90 minutes; docs/tests.md says
# what runs, docs/benchmarks.md how long.
pytest: host-deps venv
	@side=$$(mktemp); \
	tests/at_idle_priority.sh $(MAKE) --no-print-directory ansible-lint unit > "$$side" 2>&1 & pid=$$!; \
	$(BIN)/pytest -q -m lab --durations=40; lab=$$?; \
	wait $$pid; side_rc=$$?; \
	echo "== ansible-lint and the tests without a lab (run beside the lab tests, at idle priority): exit status $$side_rc"; \
	cat "$$side"; rm -f "$$side"; \
	[ $$lab -eq 0 ] && [ $$side_rc -eq 0 ]

# The tests that need no lab, over the cores.
unit: venv
	$(BIN)/pytest -q -m "not lab" -n auto --durations=10

# The molecule scenarios converge the real playbooks on lab machines (Debian 12/13, rsync/shared). `make test` no
# longer runs one: tests/test_cli_lab.py + test_drills.py cover Debian 12 with rsync and tests/test_fresh_lab.py
# Debian 13 with sshfs (deploy, idempotence, verify).
# `make molecule MOLECULE_SCENARIOS="default shared trixie trixie-shared"` runs them.
MOLECULE_SCENARIOS ?= trixie-shared

molecule: host-deps venv
	@set -e; for s in $(MOLECULE_SCENARIOS); do \
	  echo "== molecule test -s $$s"; PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s $$s; done

test: ruff pytest

# Only the lab tests (all of them are in `make test` too), in the order tests/conftest.py sets, on fresh labs.
drills: host-deps venv
	$(BIN)/pytest -q -m lab

# Locks: files/locks/airflow-<version>-py<X.Y>.txt pins every package for each supported Debian's Python. They are
# resolved for the exact interpreter the nodes have (markers can depend on the patch level: redis needs
# async-timeout on Debian 12's 3.11.2, not on 3.11.3+). `make lock LOCK_DIR=/tmp/x` writes them elsewhere.
AIRFLOW_VERSION ?= 3.3.2
# The other copy: node_pythons in plugins/module_utils/extras_lock.py (airflow-cluster lock); change both.
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

# An environment's lock of the team's extra packages (airflow_extra_requirements, airflow_extra_wheels), on top of the
# project's lock whose pins never move: <airflow_extras_lock_dir>/airflow-<version>-py<X.Y>.txt for each of its
# Pythons (airflow_cluster/lock.py). A deploy refuses an inventory whose extras no longer match it.
INVENTORY ?=
lock-env: venv
	@if [ -z "$(INVENTORY)" ]; then echo "usage: make lock-env INVENTORY=inventory/<env>"; exit 2; fi
	$(BIN)/airflow-cluster lock -i $(INVENTORY)

# Deploy benchmarks (a)-(f) on fresh labs, beside their goals: see docs/benchmarks.md.
benchmark: host-deps venv
	$(BIN)/python benchmarks/deploy.py

# Each role's README.md is generated from its specs (tests/role_readmes.py); tests/test_role_readmes.py fails when
# one is stale.
role-readmes: venv
	$(BIN)/python -m tests.role_readmes

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
