# The grading image: Python 3.11, make, and the course's pinned stack, installed at build
# time (the only step that needs the network) by the course's own `make setup`, into
# /opt/venv so that mounting the course over /course at grading time hides nothing.
#
#   docker build -t course-grading -f docker/grading.Dockerfile .
#   docker/grade.sh SUBMISSIONS GRADING_DIR        # grades offline: see docs/instructor.md
#
# Rebuild after pyproject.toml changes: `make grade` inside compares the two.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /course
COPY pyproject.toml README.md Makefile ./
COPY course_utils ./course_utils
# PyTorch's CPU index, as in environment.yml: torch==2.13.0 resolves to its CPU build
RUN PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup VENV=/opt/venv PYTHON=python3.11 \
    && rm -rf /root/.cache
ENV HOME=/home/grader MPLCONFIGDIR=/home/grader/.config/matplotlib
