# fastrcnn-lite: the commands the README promises.
#   make course   set up .venv, generate the embedded dataset, run every notebook, write reports/
#   make test     set up .venv, lint, run the unit and browser tests and every notebook under nbval (what CI runs)
#   make test-portable  the same on another instruction-set path, as on another CPU
#   make lab      open JupyterLab on notebooks/
#   make student  write the student notebooks (solutions replaced by stubs) to student/
#   make voc      the full PASCAL VOC 2007 run from the command line (download, train, evaluate; resumable)
#   make voc-plan what make voc will do and a timed estimate of each stage here (VOC_FLAGS="--amp" etc.)
#   make screenshots  the README's widget screenshots in assets/, taken by the browser tests

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

.PHONY: course test test-portable unit nbval lab data voc voc-plan notebooks lint clean student assignments screenshots

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tests,instructors]'
	@touch $(STAMP)

data: $(STAMP)
	$(BIN)/python -m fastrcnn_lite.embedded --root data/embedded

course: $(STAMP) data
	$(BIN)/python tools/run_course.py

test: $(STAMP) lint
	$(BIN)/python -m pytest tests notebooks $(PYTEST_NBVAL)

# `make test` as on another CPU: the kernels take another instruction-set path (AVX2 instead of
# AVX-512, or the reverse), from cold caches in build/portable/, so pre-training gives other
# weights; every checked notebook output must still match. Override PORTABLE_ISA to try another
# path, e.g. make test-portable PORTABLE_ISA="ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1".
PORTABLE_ISA  ?= ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
PORTABLE_HOME := $(CURDIR)/build/portable
test-portable: $(STAMP)
	rm -rf $(PORTABLE_HOME) && mkdir -p $(PORTABLE_HOME)
	$(BIN)/python -m fastrcnn_lite.embedded --root $(PORTABLE_HOME)/data/embedded
	$(PORTABLE_ISA) FASTRCNN_HOME=$(PORTABLE_HOME) $(BIN)/python -m pytest tests notebooks $(PYTEST_NBVAL)

unit: $(STAMP)
	$(BIN)/python -m pytest tests

nbval: $(STAMP)
	$(BIN)/python -m pytest notebooks $(PYTEST_NBVAL)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# Re-execute the committed notebooks in place (after changing package code they use).
notebooks: $(STAMP) data
	$(BIN)/python tools/execute_notebooks.py

VOC_ROOT ?= data/voc
VOC_OUT  ?= runs/voc07-vgg16
VOC_FLAGS ?=
VOC_TRAIN = $(BIN)/python -m fastrcnn_lite.train --profile full --data-root $(VOC_ROOT) --year 2007 \
	--split trainval --backbone vgg16 --weights IMAGENET1K_V1 --out $(VOC_OUT) --resume --eval $(VOC_FLAGS)
voc: $(STAMP)
	$(BIN)/python -m fastrcnn_lite.download --root $(VOC_ROOT) --year 2007
	$(VOC_TRAIN)

# What `make voc` will do and how long each stage takes on this machine; downloads nothing.
voc-plan: $(STAMP)
	$(VOC_TRAIN) --plan

# The README's widget screenshots (assets/*.png), taken by the browser tests in headless chromium.
screenshots: $(STAMP)
	FASTRCNN_SCREENSHOTS=$(CURDIR)/assets $(BIN)/python -m pytest tests/test_browser.py -q -k "roi_widgets or iou_widget"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check fastrcnn_lite tests tools

clean:
	rm -rf reports .pytest_cache

# Student versions of the notebooks in student/ (generated, git-ignored): solution blocks
# replaced by stubs, hidden tests removed, outputs cleared. See docs/INSTRUCTORS.md.
student: $(STAMP)
	$(BIN)/python tools/make_student.py
assignments: student
