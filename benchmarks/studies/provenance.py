"""Which code trained a pre-registered study's runs: every revision its runs' config.json record
(the first training's `environment.git` and each resumption's `history[].git`), how many runs each,
and whether each descends from the commit that registered the study's suite file. A `+dirty`
revision (uncommitted changes on that commit) is listed as such: its runs need another check
(retrain_and_compare.py). Prints a markdown table; exit code 1 if some revision does not descend
from the registration commit or is unknown to the repository.

    python benchmarks/studies/provenance.py SUITE_DIR REGISTRATION_COMMIT [--repo PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

DIRTY = "+dirty"


def recorded_revisions(suite_dir: Path) -> dict[str, set[str]]:
    """revision (as recorded, `+dirty` kept) -> the runs (relative folders) that it trained."""
    runs: dict[str, set[str]] = collections.defaultdict(set)
    for config_path in sorted(suite_dir.glob("**/config.json")):
        if "report" in config_path.parts:
            continue
        config = json.loads(config_path.read_text())
        run = config_path.parent.relative_to(suite_dir).as_posix()
        runs[config["environment"]["git"]].add(run)
        for event in config.get("history", []):
            if event.get("git"):
                runs[event["git"]].add(run)
    return runs


def descends(repo: Path, ancestor: str, revision: str) -> bool | None:
    """Whether `revision` (its `+dirty` mark dropped) has `ancestor` in its history; None when
    the repository does not know it."""
    commit = revision.removesuffix(DIRTY)
    git = ["git", "-C", str(repo)]
    if subprocess.run([*git, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True).returncode:
        return None
    return subprocess.run([*git, "merge-base", "--is-ancestor", ancestor, commit]).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite_dir", type=Path)
    parser.add_argument("registration", help="the commit that added the study's suite file")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    runs = recorded_revisions(args.suite_dir)
    every_run = set().union(*runs.values()) if runs else set()
    print(f"{len(every_run)} runs in {args.suite_dir}; registration commit {args.registration}\n")
    print("| recorded revision | runs trained (in part) by it | descends from the registration |")
    print("|---|---|---|")
    bad = False
    for revision, trained in sorted(runs.items(), key=lambda item: -len(item[1])):
        verdict = descends(args.repo, args.registration, revision)
        bad |= verdict is not True
        said = {True: "yes", False: "NO", None: "unknown to the repository"}[verdict]
        if verdict and revision.endswith(DIRTY):
            said += " (with uncommitted changes: " + ", ".join(sorted(trained)) + ")"
        print(f"| {revision} | {len(trained)} | {said} |")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
