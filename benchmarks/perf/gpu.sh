#!/usr/bin/env bash
# GPU benchmark (one GPU, well under 8 minutes): dcgan32 batch 64 training it/s for bce and bce+gdpp
# in fp32, bf16 autocast and bf16 + torch.compile, beside the plain hand-written fp32 loop measured in
# the same process (eager and replayed from a CUDA graph), after whole ring8 runs with and without
# CUDA graphs. Runs from a checkout without installing it (torch, torchvision, numpy, matplotlib).
#   bash benchmarks/perf/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
"$PYTHON" benchmarks/perf/graph_train.py --device cuda --steps 2000 --variants bce,wgan-gp,bce+gdpp-si \
  || echo "graph_train.py failed (exit $?)"
"$PYTHON" benchmarks/perf/train_step.py --device cuda --steps 100 --rounds 3 --warmup 20 --skip-eigh --compile-modes default
