# The two commands of the README: `make run` (local pipeline) and `make test` (the suite).
# `make check` is the gate CI runs first: lint, format, mypy --strict on everything shipped, the unit tier,
# the docs site's strict build. Each installs what it needs first; installs are stamped so repeats are fast.
# Installs come from requirements/*.lock (exact versions with hashes); `make lock` updates them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
# sam build needs a Python matching the Lambda runtime (python3.12) on PATH; pyenv provides it here: the
# newest installed patch of 3.11 and of 3.12, whatever they are (e.g. 3.11.7:3.12.1).
SAM_PYTHONS ?= $(shell for minor in 3.11 3.12; do pyenv versions --bare 2>/dev/null \
	| grep -E "^$$minor\.[0-9]+$$" | sort -t. -k3,3n | tail -n 1; done | paste -sd: -)

# The suite runs on every core (pytest-xdist), a file at a time per worker: each worker has its own moto,
# emulators and local stack on free ports. One worker more than there are cores: much of the e2e and chaos
# tiers waits (on a local stack, on injected latency), and a third worker on two cores uses that time.
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
# Material for MkDocs prints a banner about its successor on every build: not ours to act on here.
export NO_MKDOCS_2_WARNING := 1

.PHONY: run test durations check install tools lint typecheck complexity docs docs-serve lock build validate deploy benchmarks chaos load smoke clean

run: $(BIN)/.installed
	$(BIN)/python -m simulator.local

# The 25 slowest tests are listed at the end: where the suite's time goes, in every CI log.
test: $(BIN)/.installed $(TOOLS)/.installed
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

# The suite, as `make test`, writing each test's time to tests/durations.json: the order in which `make test`
# hands files to its workers, the longest first (tests/support/scheduling.py). Commit the file after a change
# that makes a test much longer or shorter.
durations: $(BIN)/.installed $(TOOLS)/.installed
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 --store-durations

install: $(BIN)/.installed

tools: $(TOOLS)/.installed

# The SendGrid emulator renders dynamic templates with Handlebars.js (npm, locked; Node.js is on the machine).
HANDLEBARS := simulator/emulators/handlebars
# axe-core for the donation form's accessibility check in the browser tests (dev only, locked).
AXE := tests/e2e/axe

# Exactly the locked versions (--require-hashes), then the project itself without resolving again.
$(BIN)/.installed: requirements/dev.lock pyproject.toml $(HANDLEBARS)/package-lock.json $(AXE)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	npm ci --prefix $(HANDLEBARS) --no-audit --no-fund --silent
	npm ci --prefix $(AXE) --no-audit --no-fund --silent
	touch $@

# checkov and the SAM CLI pin their own boto versions: each gets a virtualenv of its own, installed exactly
# from its lock (requirements/tools-*.lock, with hashes).
$(TOOLS)/.installed: requirements/tools-checkov.lock requirements/tools-sam.lock
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --require-hashes --no-deps -r requirements/tools-checkov.lock
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet --require-hashes --no-deps -r requirements/tools-sam.lock
	touch $@

check: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(MAKE) complexity
	$(BIN)/pytest -m unit -q
	$(BIN)/mkdocs build --strict --quiet

# The docs site (mkdocs.yml): built into artifacts/site, or served with live reload on 127.0.0.1:8000.
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict

docs-serve: $(BIN)/.installed
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# The one command that updates the locks: every dependency resolved again, from pyproject.toml (the dev
# extra and the build backend included) and requirements/tools-*.in, written with hashes. Commit the .lock
# files it changes with the change that needed them.
PIP_COMPILE := $(BIN)/pip-compile --quiet --upgrade --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links
lock: $(BIN)/.installed
	$(PIP_COMPILE) --extra dev --build-deps-for editable --output-file requirements/dev.lock pyproject.toml
	$(PIP_COMPILE) --output-file requirements/tools-checkov.lock requirements/tools-checkov.in
	$(PIP_COMPILE) --output-file requirements/tools-sam.lock requirements/tools-sam.in

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# Cyclomatic complexity: every function, method and class at radon's grade C (complexity 20) or better.
complexity: $(BIN)/.installed
	$(BIN)/xenon --max-absolute C src functions infra simulator benchmarks

validate: $(TOOLS)/.installed
	AWS_DEFAULT_REGION=us-east-1 $(TOOLS)/sam/bin/sam validate --lint

build: $(TOOLS)/.installed
	$(if $(SAM_PYTHONS),PYENV_VERSION=$(SAM_PYTHONS)) $(TOOLS)/sam/bin/sam build

deploy: build
	$(TOOLS)/sam/bin/sam deploy --guided

# The product's Stripe/SendGrid calls against the real services in test mode (src/donations_ops/smoke.py):
# STRIPE_API_KEY=sk_test_... [SENDGRID_API_KEY=...] make smoke, or each function's restricted key as
# STRIPE_CHARGE_KEY / STRIPE_TOKENIZE_KEY / STRIPE_RECONCILER_KEY (docs/security.md). Without keys it says so and exits 0.
smoke: $(BIN)/.installed
	$(BIN)/python -m donations_ops.smoke

benchmarks: $(BIN)/.installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache artifacts
