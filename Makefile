# fxfer — `make run` starts the whole product locally; `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# This file, by the path make was given (make -f elsewhere/Makefile works too).
THIS_MAKEFILE := $(lastword $(MAKEFILE_LIST))
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCALSTACK_VENV := .venv-localstack
RUNTIME_VENV := .venv-runtime
APT_PACKAGES := xmlsec1 chromium gettext binutils
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup messages run test test-fast test-integration test-package fault-matrix package lint check-deploy audit-deps format clean bench-short bench-coldstart bench-upload bench-aggregate bench-cost bench-pages

help:
	@echo "make run      set up and start fxfer locally on stand-ins for AWS (http://127.0.0.1:8000)"
	@echo "make test     set up and run every test (fast, integration, package)"
	@echo "make package  build the Lambda package into dist/"
	@echo "make fault-matrix  inject every fault at every AWS call of every flow; the matrix in dist/fault-matrix.md"
	@echo "make lint     ruff"

# Translations: the .po files are the source; their .mo files are compiled here (GNU gettext's msgfmt, from
# the apt packages) and never committed, so they cannot drift from the .po. devtools.package compiles them too.
PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po)
MO_FILES := $(PO_FILES:.po=.mo)
%.mo: %.po .apt.done
	msgfmt --check -o $@ $<

# --- set-up (idempotent: a second run reuses what the first installed) ---------------------------------------
setup: $(VENV)/.done .dev/.done $(LOCALSTACK_VENV)/.done .apt.done $(MO_FILES)

# Another apt run (unattended-upgrades, a second checkout's set-up) holds dpkg's lock or the package lists' lock
# for minutes: wait for it instead of failing. apt-get waits for dpkg's lock with DPkg::Lock::Timeout, but
# `apt-get update` ignores that option for the lists lock, so update is retried while the lock is the reason.
APT_LOCK_RETRY_SECONDS ?= 10
.apt.done: $(THIS_MAKEFILE)  # re-checked when APT_PACKAGES changes (dpkg -s is cheap; only what is missing is installed)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  for try in $$(seq 60); do \
	    out=$$($$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq 2>&1) && break; \
	    case "$$out" in *"Could not get lock"*) ;; *) echo "$$out" >&2; exit 1;; esac; \
	    [ "$$try" = 60 ] && { echo "$$out" >&2; exit 1; }; \
	    echo "Waiting for another apt run to release the package lists..."; sleep $(APT_LOCK_RETRY_SECONDS); \
	  done; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

$(VENV)/.done: requirements.txt requirements-deploy.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 13), f"fxfer needs Python 3.13, {sys.executable} is {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

$(LOCALSTACK_VENV)/.done: requirements-localstack.txt
	$(PYTHON) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install -q --upgrade pip
	$(LOCALSTACK_VENV)/bin/pip install -q -r requirements-localstack.txt
	@touch $@

# Development keys and certificates: generated here, never committed.
.dev/.done: devtools/devkeys.py $(VENV)/.done
	$(PY) devtools/devkeys.py .dev
	@touch $@

# --- run ---------------------------------------------------------------------------------------------------
run: setup
	$(PY) -m devtools.run

# --- tests -------------------------------------------------------------------------------------------------
test: setup
	$(MAKE) --no-print-directory test-fast
	$(MAKE) --no-print-directory test-integration
	$(MAKE) --no-print-directory test-package

# In-process moto, in parallel. Work stealing: a worker that runs out takes tests still queued for the other, so
# a long fault sweep near the end does not leave one CPU idle.
test-fast: setup
	$(PY) -m pytest -n 2 --dist worksteal -m "not integration and not package and not browser"

# Against LocalStack (S3, KMS) and moto server (DynamoDB, SES), started and stopped here; browser tests too.
test-integration: setup
	$(PY) -m devtools.stack --provision fxfer.settings.test -- $(PY) -m pytest -m "integration or browser"

# The built Lambda package, called through the function's handler (fxfer.entry around Zappa's own).
test-package: package
	$(PY) -m pytest -m package

# Every flow under every fault kind at every AWS call (tests/reliability), one process (the matrix is collected
# in it), written to $(FAULT_MATRIX) and printed.
FAULT_MATRIX ?= dist/fault-matrix.md
fault-matrix: setup
	@mkdir -p $(dir $(FAULT_MATRIX)) && rm -f $(FAULT_MATRIX)
	FXFER_FAULT_MATRIX=$(FAULT_MATRIX) $(PY) -m pytest -p no:xdist -q tests/reliability || status=$$?; \
	cat $(FAULT_MATRIX) 2>/dev/null || true; exit $${status:-0}

# --- Lambda package ----------------------------------------------------------------------------------------
package: setup
	$(PY) -m devtools.package

# Every bench in a short mode, so CI proves they still run: a small day to aggregate, two cold starts, a 120 MiB
# upload (the browser's multipart path and its floor), a warm process's guest requests and a release (AWS clients reused), and
# three of each page through the package's Zappa handler.
bench-short: package
	$(PY) -m bench.aggregate --sizes 500 --background-days 2 --background-events 200
	$(PY) -m bench.coldstart --runs 2 --split
	$(PY) -m bench.upload --size-mib 120 --budget-seconds 300 --floor
	$(PY) -m bench.cost --short
	$(PY) -m bench.clients --short
	$(PY) -m bench.pages --short

bench-coldstart: package
	$(PY) -m bench.coldstart

# Each page's p50/p95 and CPU on a warm package process fed API Gateway events (guest link, code, download, a
# release to 20, My transfers, the dashboard, a year of transfers in the admin).
bench-pages: package
	$(PY) -m bench.pages

# 1 GiB through the browser's multipart path vs boto3's upload_file, on LocalStack S3, and the same browser's raw
# part PUTs (what this machine allows any browser upload), alone and with the SHA-256 worker, the worker alone, and
# the bound these set on this machine.
bench-upload: setup
	$(PY) -m bench.upload --floor

# One day's aggregation time and read units for 1k, 10k and 100k events in a table of many days.
bench-aggregate: setup
	$(PY) -m bench.aggregate

# The monthly bill at 5 and 10,000 transfers a day, itemised, with the three front doors (docs/cost.md).
# Other inputs: $(PY) -m bench.cost --help
bench-cost:
	python3 -m bench.cost

# --- tooling -----------------------------------------------------------------------------------------------
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Django's deployment checks (`check --deploy`) under production settings, warnings included, with a throwaway
# placeholder for every variable production.py requires (devtools/placeholders.py generates the SAML key and
# certificate at run time: nothing secret is committed). The caller's FXFER_* variables are left out.
check-deploy: $(VENV)/.done
	$(PY) -c 'import os, sys; from devtools.placeholders import placeholder_production_env as placeholders; \
	env = {k: v for k, v in os.environ.items() if not k.startswith("FXFER_")}; \
	env.update(placeholders(), DJANGO_SETTINGS_MODULE="fxfer.settings.production"); \
	os.execve(sys.executable, [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)'

# Known vulnerabilities (pip-audit, PyPI's vulnerability data): the pinned runtime requirements (what the Lambda
# package ships; every transitive pin is listed, so --no-deps), then the dev venv as installed (test tools and
# their unpinned dependencies). --strict: a package that could not be looked up fails the audit, so an
# unreachable vulnerability service never passes for "no known vulnerabilities". A vulnerability that does not
# apply is ignored with --ignore-vuln ID in PIP_AUDIT_IGNORE, with a comment saying why.
PIP_AUDIT_IGNORE :=
PIP_AUDIT := $(VENV)/bin/pip-audit --strict --progress-spinner off $(PIP_AUDIT_IGNORE)
audit-deps: $(VENV)/.done
	$(PIP_AUDIT) --no-deps --disable-pip -r requirements.txt
	$(PIP_AUDIT) --local

# Refresh the catalogue after adding or changing a translatable string; then translate every new msgid.
messages: setup
	$(PY) manage.py makemessages -l ja --no-obsolete --no-wrap $(MAKEMESSAGES_IGNORE)
MAKEMESSAGES_IGNORE := --ignore='.venv*' --ignore=staticfiles --ignore=dist --ignore=tests --ignore=bench --ignore=devtools --ignore=static/vendor

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(LOCALSTACK_VENV) $(RUNTIME_VENV) dist .dev .apt.done staticfiles .pytest_cache .ruff_cache
