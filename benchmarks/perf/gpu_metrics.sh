#!/usr/bin/env bash
# GPU check of the metrics stage (one GPU, a few minutes): the fidelity metric with Inception-v3 on
# CUDA, cold vs cached real statistics (eval_cache.py), and IvOM's published size (2,000 images) on
# CUDA. Offline: the CIFAR-10 set is random images in the real pickle format and the Inception
# weights have the real structure but random values, so only wall times and the plumbing mean
# something here, not the metric values.
#   bash benchmarks/perf/gpu_metrics.sh
# torch-fidelity or tqdm missing (a bare GPU machine): put their wheels in .device-wheels/ first
#   (pip download torch-fidelity==0.4.0 tqdm --no-deps -d .device-wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
if ! "$PYTHON" -c "import torch_fidelity, tqdm" 2>/dev/null; then  # pure-Python wheels: unpack them
  for wheel in .device-wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$WORK/site"; done
  export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" - "$WORK" <<'EOF'
import sys, time
from pathlib import Path
import torch
from image_fixtures import write_cifar10_fixture
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

work = Path(sys.argv[1])
write_cifar10_fixture(work / "data", n_per_batch=10_000)
load_state_dict, load = FeatureExtractorInceptionV3.load_state_dict, torch.load
FeatureExtractorInceptionV3.load_state_dict, torch.load = (lambda self, state: None), (lambda *a, **k: {})
model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="-")
FeatureExtractorInceptionV3.load_state_dict, torch.load = load_state_dict, load
torch.save(model.state_dict(), work / "inception.pth")
print("wrote a CIFAR-10-format set of 60,000 random images and random Inception-v3 weights")
EOF
export GDPP_BENCH_CACHE="$WORK/cache"
"$PYTHON" benchmarks/perf/eval_cache.py --dataset cifar10 --samples 10000 --rounds 2 --device cuda \
  --data-root "$WORK/data" --inception-weights "$WORK/inception.pth"
"$PYTHON" - "$WORK" <<'EOF'
import sys, time
import torch
from gdpp_bench.data import load_split
from gdpp_bench.metrics.ivom import ivom
from gdpp_bench.models import MODELS

images, _ = load_split("cifar10", f"{sys.argv[1]}/data", "test")
targets = images[:2000].cuda().float().div(127.5).sub(1)
torch.manual_seed(0)
generator, _ = MODELS.get("dcgan32")((3, 32, 32))
generator.cuda()
for label in ("warm-up", "timed"):
    torch.cuda.synchronize()
    started = time.perf_counter()
    per_image = ivom(generator, targets)
    torch.cuda.synchronize()
    print(f"IvOM {label}: 2,000 images, L-BFGS 25 iterations x 3 restarts on {torch.cuda.get_device_name()}: "
          f"{time.perf_counter() - started:.1f} s, mean MSE {per_image.mean().item():.4f}")
EOF
