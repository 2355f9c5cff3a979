# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install infra lint typecheck unit bench down clean contracts images test-containers test-cluster

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing haggle with pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

infra: install
	$(BIN)/haggle infra up
	$(BIN)/haggle topics ensure

demo: infra
	$(BIN)/haggle demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The contracts artifact (contracts/): AsyncAPI document, JSON Schemas, new sample messages.
contracts: install
	$(BIN)/haggle contracts export contracts

unit: install
	$(BIN)/pytest tests/unit -q

test: infra lint typecheck
	$(BIN)/pytest -q --durations=15 tests; status=$$?; \
	$(BIN)/haggle services down >/dev/null 2>&1; exit $$status

# The container images with podman (deploy/images.sh: cached layers, the Debian base made once).
images: install
	bash deploy/images.sh all

# Only the container tests (tests/containers, marker `containers`); `make test` runs them too.
test-containers: install
	$(BIN)/pytest -q --durations=10 -m containers tests/containers

# Only the three-broker cluster test (tests/integration/test_infra_cluster.py; `make test` runs it
# too): own ports, own state.
test-cluster: install
	$(BIN)/pytest -q -m cluster tests/integration/test_infra_cluster.py

bench: infra
	$(BIN)/python -m bench

down: install
	-$(BIN)/haggle services down
	$(BIN)/haggle infra down

clean: down
	rm -rf .haggle $(VENV)
