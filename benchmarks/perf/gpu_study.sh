#!/usr/bin/env bash
# The GPU study (issue 16): Stacked-MNIST, the paper's full recipe, for bce, bce+gdpp and
# bce+gdpp-si x 3 seeds (suite stacked-mnist-gpu), all runs at once on the one GPU, then the report,
# packed as OUT/stacked-mnist-gpu-report.tar.gz. Two steps:
#   bash benchmarks/perf/gpu_study.sh prepare
#       here, with internet for pip: .device-carry/ gets what a bare GPU machine lacks: the MNIST IDX
#       files gzipped (from $GDPP_BENCH_DATA, default ../shared/datasets), the project's MNIST
#       classifier weights trained on this CPU (the same instrument as the CPU studies) and the
#       pure-Python wheel of torch-fidelity (GDPP_STUDY_WHEELS=0 skips it)
#   bash benchmarks/perf/gpu_study.sh run OUT
#       there (device tool: carry .device-carry; about 7 minutes on an H200, not yet measured)
# Settings (environment): DEVICE (cuda), WORKERS (9: one process per run), STEPS (the suite's
# 15,000), EVAL_SAMPLES (the suite's), VARIANTS and SEEDS (the suite's), REPORT_FIGURES (1; 0 = the
# report's tables only); the tests dry-run it on the CPU with DEVICE=cpu STEPS=4 EVAL_SAMPLES=64,
# one run and no figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"
CARRY="${GDPP_STUDY_CARRY:-$PWD/.device-carry}"
SUITE=stacked-mnist-gpu

prepare() {
  local data="${GDPP_BENCH_DATA:-../shared/datasets}"
  mkdir -p "$CARRY/datasets/MNIST/raw" "$CARRY/instruments"
  for file in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gzip -c "$data/MNIST/raw/$file" > "$CARRY/datasets/MNIST/raw/$file.gz"
  done
  "$PYTHON" - "$data" "$CARRY/instruments" <<'PY'
import shutil, sys
from gdpp_bench.metrics.instruments import load_or_train_classifier
_, info = load_or_train_classifier("mnist", sys.argv[1])  # trained once on this CPU, then cached
shutil.copy2(info.path, sys.argv[2])
print(f"classifier {info.path.name} (test accuracy {info.test_accuracy:.4f})")
PY
  if [ "${GDPP_STUDY_WHEELS:-1}" != 0 ]; then
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$CARRY/wheels" torch-fidelity==0.4.0
  fi
  du -sh "$CARRY"
}

run() {
  local out="${1:?usage: gpu_study.sh run OUT}"
  local work
  work="$(mktemp -d)"
  mkdir -p "$out" "$work/data/MNIST/raw" "$work/cache/instruments"
  for file in "$CARRY"/datasets/MNIST/raw/*.gz; do
    gunzip -c "$file" > "$work/data/MNIST/raw/$(basename "$file" .gz)"
  done
  cp "$CARRY"/instruments/*.pt "$work/cache/instruments/"
  # found, not imported: importing it imports torch (~5 CPU-s)
  if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch_fidelity') is None)"; then
    # a pure-Python wheel: unpack it
    for wheel in "$CARRY"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$work/site"; done
    export PYTHONPATH="$PYTHONPATH:$work/site"
  fi
  export GDPP_BENCH_CACHE="$work/cache"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
  local options=(--suite "$SUITE" --results "$work/results" --data-root "$work/data"
    --device "${DEVICE:-cuda}" --workers "${WORKERS:-9}")
  [ -n "${STEPS:-}" ] && options+=(--steps "$STEPS")
  [ -n "${EVAL_SAMPLES:-}" ] && options+=(--eval-samples "$EVAL_SAMPLES")
  [ -n "${VARIANTS:-}" ] && options+=(--variants "$VARIANTS")
  [ -n "${SEEDS:-}" ] && options+=(--seeds "$SEEDS")
  local started=$SECONDS status=0
  "$PYTHON" -m gdpp_bench.cli run "${options[@]}" || status=$?
  echo "study: exit $status after $((SECONDS - started)) s"
  local report_options=()
  [ "${REPORT_FIGURES:-1}" = 0 ] && report_options+=(--no-figures)
  "$PYTHON" -m gdpp_bench.cli report --suite "$SUITE" --results "$work/results" "${report_options[@]}"
  # the report and each run's record (config, metrics, DONE, log), not the checkpoints
  (cd "$work/results" && find "$SUITE" -type f \( -path "*/report/*" -o -name "*.json" -o -name DONE -o -name "*.csv" \) \
    | grep -v '\.pdf$' | tar czf "$out/$SUITE-report.tar.gz" -T -)
  ls -l "$out/$SUITE-report.tar.gz"
  return "$status"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: gpu_study.sh prepare | run OUT" >&2; exit 2 ;;
esac
