# Lifecycle Notify — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help dev test lint typecheck bench clean browser

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# The browser tests drive Debian's chromium (Playwright cannot download browsers here), with CJK
# fonts so that the screenshots show the Chinese pages; the SMTP-over-TLS tests make their
# certificate with openssl. Installed when missing; CI skips nothing.
browser: ## Install Debian's chromium and CJK fonts for the browser tests (and openssl), when missing
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi "noto.*cjk" \
	    || ! command -v openssl >/dev/null; then \
	  echo "installing Debian's chromium, fonts-noto-cjk and openssl for the tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium fonts-noto-cjk openssl; \
	fi

dev: $(STAMP) ## Run the whole stack locally and replay the demo scenarios
	$(BIN)/lifecycle dev $(ARGS)

test: $(STAMP) browser ## Run the whole test suite (starts its own broker, Redis and SMTP server)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Lint and check formatting with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## Type-check the shipped packages (pyproject: tool.mypy files) with mypy
	$(BIN)/mypy

bench: $(STAMP) ## Run the benchmarks under bench/ (prints numbers)
	$(BIN)/python -m bench

clean: ## Remove the virtualenv, caches and the local outbox
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
