# netshrink: `make book` (set up, build the HTML from the committed results, running only the
# chapters that have none matching the code; ALL=1 runs every chapter) and `make test`.
PROFILE ?= quick
CHAPTERS ?=
ALL ?=
RUN_ALL := $(if $(ALL),--all,)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup book chapters html pages pdf check-site cells test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (netshrink)"
	touch $(STAMP)

book: setup  ## build _build/html; runs the chapters (of PROFILE) without results matching the code, CHAPTERS, or ALL=1 every one
	$(PY) -m netshrink.book.runner --profile $(PROFILE) --chapters "$(CHAPTERS)" $(RUN_ALL)

chapters: setup  ## run the chapters only (as `make book` chooses them)
	$(PY) -m netshrink.book.runner --profile $(PROFILE) --chapters "$(CHAPTERS)" $(RUN_ALL) --no-build

html: setup  ## build _build/html from the finished runs of PROFILE
	$(PY) -m netshrink.book.runner --profile $(PROFILE) --build-only

pages: setup  ## the published book: the HTML (quick runs of the chapters without committed full results) and its PDF
	$(PY) -m netshrink.book.runner --profile quick
	$(PY) -m netshrink.book.pdf --profile quick

pdf: setup  ## the whole book as one PDF, _build/pdf/netshrink.pdf, copied into _build/html (needs Debian's chromium and poppler-utils)
	$(PY) -m netshrink.book.pdf --profile $(PROFILE)

check-site: setup  ## open every page of _build/html in headless Chromium (needs Debian's chromium); PDF=1: and its PDF link
	$(PY) -m netshrink.book.sitecheck _build/html --profile $(PROFILE) $(if $(PDF),--pdf,)

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
