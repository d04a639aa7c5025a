#!/usr/bin/env bash
# Continue the pre-registered studies in the background, each session, until they are done.
#   benchmarks/studies/continue.sh [SUITE...]     (default: ring8-tuned grid25-tuned, in that order)
# - A study folder missing from $GDPP_STUDIES (default ~/gdpp-studies; a new machine has none) is
#   restored from the archive committed in results/SUITE/runs/; one that exists is never replaced.
# - The frozen study code is checked out at $STUDY_REV in $GDPP_STUDIES/code (a git worktree).
# - Two workers (one per core, one torch thread each, nice 19) each run the suites in order with
#   `tune`, which skips finished runs and takes the next waiting trial from the shared storage.
# - Every $SNAPSHOT_MIN minutes (default 20) each study is archived into results/SUITE/runs/ and
#   only those records are committed, so that a session's work outlives its machine.
set -euo pipefail
repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
studies="${GDPP_STUDIES:-$HOME/gdpp-studies}"
rev="${STUDY_REV:-1acc607}" # the frozen study code (14fe22b until 2026-12-07: it could not continue from an archive)
venv="${GDPP_BENCH_VENV:-$HOME/.cache/gdpp-bench/venv}"
minutes="${SNAPSHOT_MIN:-20}"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(ring8-tuned grid25-tuned)

if [ ! -x "$venv/bin/python" ]; then
    echo "error: no venv at $venv: build it first (.ci/run builds it there), or set GDPP_BENCH_VENV" >&2
    exit 2
fi
mkdir -p "$studies"
for suite in "${suites[@]}"; do
    if [ ! -e "$studies/$suite" ] && [ -d "$repo/results/$suite/runs/$suite" ]; then
        cp -r "$repo/results/$suite/runs/$suite" "$studies/$suite"
        echo "continue: restored $suite from results/$suite/runs"
    fi
done
if [ ! -d "$studies/code/gdpp_bench" ]; then
    git -C "$repo" worktree prune
    git -C "$repo" worktree add --detach "$studies/code" "$rev" >/dev/null
elif [ "$(git -C "$studies/code" rev-parse HEAD)" != "$(git -C "$repo" rev-parse "$rev^{commit}")" ]; then
    # no worker runs yet: this script starts them
    git -C "$studies/code" checkout -q --detach "$(git -C "$repo" rev-parse "$rev^{commit}")"
fi
echo "continue: frozen study code at $rev in $studies/code"

worker() {
    local name=$1 suite
    for suite in "${suites[@]}"; do
        # exit 1 (some run diverged) still ends the study's work; the next suite follows either way
        PYTHONPATH="$studies/code" OMP_NUM_THREADS=1 nice -n 19 "$venv/bin/python" \
            -c "from gdpp_bench.cli import main; main()" tune --suite "$suite" --results "$studies" \
            >>"$studies/$suite.$name.log" 2>&1 || true
    done
}

snapshot() {
    local suite done_runs
    while sleep $((minutes * 60)); do
        for suite in "${suites[@]}"; do
            [ -d "$studies/$suite" ] || continue
            PYTHONPATH="$repo" "$venv/bin/python" -c "from gdpp_bench.cli import main; main()" archive \
                --suite "$suite" --results "$studies" --out "$repo/results/$suite/runs" >/dev/null 2>&1 || continue
            done_runs=$(find "$studies/$suite" -name DONE | wc -l)
            git -C "$repo" add "results/$suite/runs" &&
                git -C "$repo" commit -q -m "$suite: study state, $done_runs runs done ($(date -u +%H:%M) UTC)" \
                    -- "results/$suite/runs" || true
        done
    done
}

cd "$studies"
for name in A B; do
    nohup bash -c "$(declare -f worker); suites=(${suites[*]}); studies='$studies' venv='$venv'; worker $name" \
        >/dev/null 2>&1 &
    echo "continue: worker $name (pid $!), logs $studies/SUITE.$name.log"
    [ "$name" = B ] || sleep 20 # the first worker creates the storage and enqueues the budget
done
nohup bash -c "$(declare -f snapshot); suites=(${suites[*]}); studies='$studies' venv='$venv' repo='$repo' minutes=$minutes; snapshot" \
    >"$studies/snapshot.log" 2>&1 &
echo "continue: snapshots every $minutes min into results/SUITE/runs (pid $!)"
