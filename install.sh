#!/usr/bin/env bash
# Create .venv (or reuse it) and install the toolkit with its test extras.
# On a machine without an NVIDIA GPU, the CPU build of PyTorch is installed first, so that the
# plain `torch` requirement does not pull a multi-GB CUDA build.
# The tests open `nas report`'s page in headless Chromium: when it is missing, Debian's
# `chromium` package is installed (as root with apt-get; elsewhere a note says how).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
        $PIP install --quiet torch             # GPU machine: the default (CUDA) build
    else
        $PIP install --quiet torch==2.13.0     # CPU-only machine: the CPU wheel
    fi
fi
$PIP install --quiet -e ".[test]"
# pip compiles the modules of a package it installs, but not those of an editable one: compiled
# here once, they are not compiled again by every process that imports them (test processes, Ray
# workers, command-line runs), also where PYTHONDONTWRITEBYTECODE keeps Python from saving them
.venv/bin/python -m compileall -q nas costmodel lut supernet
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium (Debian package) for the report's browser test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: tests/test_report.py needs headless Chromium: apt-get install chromium"
    fi
fi
echo "installed: $(.venv/bin/nas --version)"
