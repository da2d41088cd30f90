# click-to-chat: two commands on a fresh machine.
#   make dev   set up, then run the whole product locally (no AWS account)
#   make test  set up, then run the test suite (make test-fast: the unit layer alone, in seconds)
SHELL := /bin/bash
.DEFAULT_GOAL := help
# One Python for everything: the Lambda runtime's version (infra/runtime.py). The venv, the tests,
# CI, the bench and the Lambda package all run on it; infra/find-python finds one (PATH, pyenv
# even when not on PATH, uv) or says how to get one. PYTHON=/path/to/python3.x overrides.
LAMBDA_PYTHON := $(shell sed -n 's/^PYTHON_VERSION = "\(.*\)"/\1/p' infra/runtime.py)
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools

.PHONY: help setup dev test test-fast bench soak lint agent clean java chromium system-packages

help:
	@echo "make dev    run the whole product locally (installs what it needs)"
	@echo "make test   run the tests (installs what it needs)"
	@echo "make test-fast  the unit layer only (tests/unit: pure functions, no stack, no browser), in seconds"
	@echo "make bench  the benchmark suite -> bench/results/latest.json + charts (QUICK=1 for a smoke run)"
	@echo "make soak   load test against a running make dev (SPAWN=1: its own stack) -> bench/results/soak.json"
	@echo "make lint   ruff + mypy"
	@echo "make agent ID=alice NAME=Alice [ROLE=admin]   add an agent to a running make dev"

setup: $(VENV)/.installed $(TOOLS)/.installed java

# The stamp names the Python version: a venv made by another version is rebuilt, not reused.
$(VENV)/.installed: $(VENV)/.python-$(LAMBDA_PYTHON) requirements.txt requirements-dev.txt
	$(PY) -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 refuses newer pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(VENV)/.python-$(LAMBDA_PYTHON):
	@python=$$(PYTHON="$(PYTHON)" infra/find-python $(LAMBDA_PYTHON)) || exit 1; \
	  rm -rf $(VENV) && echo "python $(LAMBDA_PYTHON): $$python" && "$$python" -m venv $(VENV)
	@touch $@

$(TOOLS)/.installed: infra/local/package.json infra/local/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js 20+ (https://nodejs.org or apt-get install nodejs npm)"; exit 1; }
	mkdir -p $(TOOLS)
	cp infra/local/package.json infra/local/package-lock.json $(TOOLS)/
	cd $(TOOLS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# System packages: Java 17+ for DynamoDB Local (make dev and make test) and Debian's
# Chromium for the browser tests (make test). Installed from Debian when we can (root with
# apt-get, one `apt-get update`), otherwise the command says how.
APT_PKGS = $(shell java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])' || echo openjdk-17-jre-headless) \
           $(if $(NEED_CHROMIUM),$(shell test -x /usr/bin/chromium || echo chromium))

java:
	@$(MAKE) --no-print-directory system-packages

chromium:
	@$(MAKE) --no-print-directory system-packages NEED_CHROMIUM=1

system-packages:
	@pkgs="$(strip $(APT_PKGS))"; \
	if [ -n "$$pkgs" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing $$pkgs from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null \
	      || { echo "error: could not install $$pkgs"; exit 1; }; \
	  else \
	    echo "error: missing system packages: $$pkgs"; \
	    echo "  Debian/Ubuntu: sudo apt-get install -y $$pkgs"; \
	    echo "  macOS: brew install openjdk@17 chromium"; exit 1; \
	  fi; \
	fi

# COMPANY="Acme Shoes": the name visitors see (asked for when run in a terminal, else kept).
dev: setup
	$(PY) -m infra.local $(if $(COMPANY),--company "$(COMPANY)")

test: setup chromium
	$(PY) -m pytest -q

# The pure layer (protocol, frames, hours, stats, validation, routing tie-break, limits): no
# Java, no DynamoDB Local, no gateway, no browser, so it needs only the venv.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

bench: setup chromium
	$(PY) -m bench.run $(if $(QUICK),--quick)
	$(PY) bench/widget_size.py

soak: setup
	$(PY) -m bench.soak $(if $(SPAWN),--spawn)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

agent: $(VENV)/.installed
	@test -n "$(ID)" -a -n "$(NAME)" || { echo "usage: make agent ID=alice NAME=Alice [ROLE=admin] [MAX=4]"; exit 1; }
	$(PY) -m infra.admin --local create-agent $(ID) --name "$(NAME)" --role $(or $(ROLE),agent) $(if $(MAX),--max-chats $(MAX))

clean:
	rm -rf $(VENV) $(TOOLS) .local .pytest_cache .mypy_cache .ruff_cache

# ---- AWS (docs/deploy.md) -------------------------------------------------------------------
#   make package STAGE=prod                      small Lambda zip + merged CloudFormation template
#   make deploy  STAGE=prod MAIL_FROM=chat@yourdomain.com TEAM_EMAIL=help@yourdomain.com
#                [COMPANY="Acme Shoes"] [ALARM_EMAIL=ops@...] [SITE_DOMAIN=chat.yourdomain.com SITE_CERTIFICATE_ARN=arn:...]
#   make destroy STAGE=dev [CONFIRM=dev] [BACKUP=1]
DEPLOY_ARGS = $(if $(MAIL_FROM),--mail-from "$(MAIL_FROM)") $(if $(TEAM_EMAIL),--team-email "$(TEAM_EMAIL)") \
              $(if $(ALARM_EMAIL),--alarm-email "$(ALARM_EMAIL)") $(if $(SITE_DOMAIN),--site-domain "$(SITE_DOMAIN)") \
              $(if $(SITE_CERTIFICATE_ARN),--site-certificate-arn "$(SITE_CERTIFICATE_ARN)") \
              $(if $(COMPANY),--company "$(COMPANY)")

.PHONY: package deploy destroy

package: $(VENV)/.installed
	@test -n "$(STAGE)" || { echo "usage: make package STAGE=dev|prod"; exit 1; }
	$(PY) -m infra.deploy package --stage $(STAGE)

deploy: $(VENV)/.installed
	@test -n "$(STAGE)" || { echo "usage: make deploy STAGE=dev|prod MAIL_FROM=... TEAM_EMAIL=..."; exit 1; }
	$(PY) -m infra.deploy deploy --stage $(STAGE) $(DEPLOY_ARGS)

destroy: $(VENV)/.installed
	@test -n "$(STAGE)" || { echo "usage: make destroy STAGE=dev|prod [CONFIRM=<stage>] [BACKUP=1]"; exit 1; }
	$(PY) -m infra.deploy destroy --stage $(STAGE) $(if $(filter $(STAGE),$(CONFIRM)),--yes) $(if $(BACKUP),--backup)

# ---- security scan (docs/deploy.md, "Security scan (checkov)") -------------------------------
#   make checkov [STAGE=dev]   checkov on infra/*.yaml and on the merged template of `make package`
# checkov lives in a throw-away venv under .tools/checkov (never in .venv, not part of make test).
# Accepted findings: infra/*.yaml carry theirs per resource (Metadata checkov skip, with the
# reason); those below hold for every function, log group and API that Chalice generates.
CHECKOV_VERSION := 3.3.30
CHECKOV_PYTHON ?= python3
CHECKOV := $(TOOLS)/checkov/bin/checkov
CHECKOV_ARGS := --framework cloudformation --compact --quiet --skip-download
CHECKOV_CHALICE_SKIPS := CKV_AWS_116,CKV_AWS_117,CKV_AWS_120,CKV_AWS_158,CKV_AWS_173

.PHONY: checkov

$(TOOLS)/checkov/.installed-$(CHECKOV_VERSION):
	rm -rf $(TOOLS)/checkov && $(CHECKOV_PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"
	@touch $@

checkov: $(TOOLS)/checkov/.installed-$(CHECKOV_VERSION) $(VENV)/.installed
	$(CHECKOV) $(CHECKOV_ARGS) -f infra/template.yaml infra/apigateway-account.yaml
	$(PY) -m infra.deploy package --stage $(or $(STAGE),dev)
	$(CHECKOV) $(CHECKOV_ARGS) --skip-check $(CHECKOV_CHALICE_SKIPS) \
	  -f .chalice/deployments/build/$(or $(STAGE),dev)/package/template.json
