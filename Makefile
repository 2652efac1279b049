# One command to run the demo, one to run the tests. Both create .venv and install what they need;
# a second run reuses the environment (re-installed only when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# PyTorch first, pinned (from PyPI this is the CUDA-enabled build; it runs on the CPU), so no dependency
	# pulls another torch. Only the embeddings/demo/test extras need it; the base install does not.
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	MODELPORT_DATA_DIR=$${MODELPORT_DATA_DIR:-var/demo} $(BIN)/modelport demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tools/typecheck.py
	tools/ensure_chromium.sh
	tools/es_node_resolve.sh
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tools/typecheck.py

typecheck: $(STAMP)
	$(BIN)/python tools/typecheck.py

clean:
	rm -rf $(VENV) var
