# The two commands of the README: `make run` (local pipeline) and `make test` (the suite).
# `make check` is the gate CI runs first: lint, format, mypy --strict on everything shipped, the unit tier.
# Each installs what it needs first; installs are stamped so repeats are fast.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
# sam build needs a Python matching the Lambda runtime (python3.12) on PATH; pyenv provides it here.
SAM_PYTHONS ?= 3.11.7:3.12.1

.PHONY: run test check install tools lint typecheck build validate deploy benchmarks chaos load smoke clean

run: $(BIN)/.installed
	$(BIN)/python -m simulator.local

test: $(BIN)/.installed $(TOOLS)/.installed
	$(BIN)/pytest

install: $(BIN)/.installed

tools: $(TOOLS)/.installed

# The SendGrid emulator renders dynamic templates with Handlebars.js (npm, locked; Node.js is on the machine).
HANDLEBARS := simulator/emulators/handlebars
# axe-core for the donation form's accessibility check in the browser tests (dev only, locked).
AXE := tests/e2e/axe

$(BIN)/.installed: pyproject.toml $(HANDLEBARS)/package-lock.json $(AXE)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	npm ci --prefix $(HANDLEBARS) --no-audit --no-fund --silent
	npm ci --prefix $(AXE) --no-audit --no-fund --silent
	touch $@

# checkov and the SAM CLI pin their own boto versions: each gets a virtualenv of its own.
$(TOOLS)/.installed: Makefile
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --upgrade pip
	$(TOOLS)/checkov/bin/pip install --quiet "checkov==3.3.30"
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet --upgrade pip
	$(TOOLS)/sam/bin/pip install --quiet "aws-sam-cli==1.170.0"
	touch $@

check: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m unit -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

validate: $(TOOLS)/.installed
	AWS_DEFAULT_REGION=us-east-1 $(TOOLS)/sam/bin/sam validate --lint

build: $(TOOLS)/.installed
	PYENV_VERSION=$(SAM_PYTHONS) $(TOOLS)/sam/bin/sam build

deploy: build
	$(TOOLS)/sam/bin/sam deploy --guided

# The product's Stripe/SendGrid calls against the real services in test mode (src/donations_ops/smoke.py):
# STRIPE_API_KEY=sk_test_... [SENDGRID_API_KEY=...] make smoke. Without keys it says so and exits 0.
smoke: $(BIN)/.installed
	$(BIN)/python -m donations_ops.smoke

benchmarks: $(BIN)/.installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache artifacts
