# netshrink: `make book` (set up, run every chapter, build the HTML) and `make test`.
PROFILE ?= quick
CHAPTERS ?=
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup book chapters html pages check-site cells test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (netshrink)"
	touch $(STAMP)

book: setup  ## run the chapters of PROFILE (and CHAPTERS) and build _build/html
	$(PY) -m netshrink.book.runner --profile $(PROFILE) --chapters "$(CHAPTERS)"

chapters: setup  ## run the chapters only
	$(PY) -m netshrink.book.runner --profile $(PROFILE) --chapters "$(CHAPTERS)" --no-build

html: setup  ## build _build/html from the finished runs of PROFILE
	$(PY) -m netshrink.book.runner --profile $(PROFILE) --build-only

pages: setup  ## the published book: quick runs of the chapters without committed full results, then the HTML
	$(PY) -m netshrink.book.runner --profile quick --skip-full

check-site: setup  ## open every page of _build/html in headless Chromium (needs Debian's chromium)
	$(PY) -m netshrink.book.sitecheck _build/html --profile $(PROFILE)

cells: setup  ## write the notebooks' parameters cells from src/netshrink/book/chapters.py
	$(PY) -m netshrink.book.cells

lint: setup
	$(PY) -m ruff check src tests chapters

test: setup lint  ## unit tests, every chapter in the smoke profile, the book build, the browser test
	$(PY) -m pytest

bench: setup  ## the benchmarks, with timings
	$(PY) -m pytest tests -m bench --benchmark-enable --benchmark-columns=min,median,max,rounds

clean:
	rm -rf _build results
