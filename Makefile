# Every set-up step lives here: CI and new users run nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB ?= demo.db

.PHONY: venv demo test lint bench cassettes clean chromium readme docs-images

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m klaviyo_etl.demo --db $(DEMO_DB)

test: $(STAMP) chromium
	$(BIN)/python -m pytest

# The dashboard test renders the HTML in headless Chromium (Debian's package). Install it
# where we may (root with apt); elsewhere that one test says it is skipped and why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: chromium is not installed; the dashboard render test will be skipped"; }

lint: $(STAMP)
	$(BIN)/ruff check klaviyo_etl tests
	$(BIN)/ruff format --check klaviyo_etl tests
	$(BIN)/python -m klaviyo_etl.docs.readme --check

# README.md's command table and public table list, from the code (`make lint` checks them).
readme: $(STAMP)
	$(BIN)/python -m klaviyo_etl.docs.readme

# README.md's `report campaigns` example and the dashboard screenshot, from the sandbox.
# pngquant (optional) shrinks the PNG to a third; it is installed like chromium where we may.
docs-images: $(STAMP) chromium
	@command -v pngquant >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pngquant >/dev/null || true; }
	$(BIN)/python -m klaviyo_etl.docs.images

bench: $(STAMP)
	$(BIN)/python -m klaviyo_etl.bench

# Re-record the client contract cassettes. Without KLAVIYO_API_KEY they are
# recorded against the sandbox; with it, against the real account at KLAVIYO_BASE_URL.
cassettes: $(STAMP)
	KLAVIYO_ETL_RECORD=1 $(BIN)/python -m pytest tests/test_contract.py

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
