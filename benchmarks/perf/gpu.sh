#!/usr/bin/env bash
# GPU benchmark (one GPU, well under 8 minutes): dcgan32 batch 64 training it/s for bce and bce+gdpp
# in fp32, bf16 autocast and bf16 + torch.compile, beside the plain hand-written fp32 loop measured in
# the same process. Runs from a checkout without installing it (only torch/torchvision/matplotlib needed).
#   bash benchmarks/perf/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
"$PYTHON" benchmarks/perf/train_step.py --device cuda --steps 100 --rounds 3 --warmup 20 --skip-eigh --compile-modes default
