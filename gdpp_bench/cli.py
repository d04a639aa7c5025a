"""The `gdpp-bench` command: list, run, tune, evaluate, report, sample, calibrate. Thin: parse, call, print.

Over 400 lines because most of it is click option declarations with their help texts (the
commands' documentation), which read best beside the command they belong to."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from gdpp_bench import __version__
from gdpp_bench.config import (
    CLASSIFIER_DATASETS,
    DEVICES,
    EXECUTORS,
    FEATURE_EXTRACTORS,
    PRECISIONS,
    PROTOCOLS,
    SEED_LIMIT,
)
from gdpp_bench.errors import INTERRUPTED_BEFORE_ANY_RUN, Interrupted, UserError
from gdpp_bench.export import BN_MODES, CHECKPOINT_CHOICES, EXPORT_FORMATS
from gdpp_bench.user_paths import default_data_root


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _seeds(text: str | None) -> list[int] | None:
    parts = _split(text)
    if parts is None:
        return None
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise UserError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {text!r}") from None


def _format_values(values: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" if v is not None else f"{k}=n/a" for k, v in values.items())


def _evaluation_options(command):
    """--protocol, --inception-weights and --batch-size, shared by run and evaluate."""
    for option in reversed(
        [
            click.option(
                "--protocol",
                type=click.Choice(PROTOCOLS),
                default="quick",
                show_default=True,
                help="quick: the suite's sample counts; paper: 50,000 generated and real samples "
                "for FID/IS/KID/precision/recall.",
            ),
            click.option(
                "--inception-weights",
                type=click.Path(dir_okay=False),
                help="Local Inception-v3 weights (" + _INCEPTION_FILE + ") for FID/IS/KID on "
                "colour datasets, where they cannot be downloaded. Another file than the published "
                "one (by sha256) is warned about, and the report marks what it measured.",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=256,
                show_default=True,
                help="Feature-extraction batch of the fidelity metrics.",
            ),
            click.option(
                "--feature-weights",
                type=click.Path(dir_okay=False),
                help="Local weights of the fidelity metrics' extractor when it is not the default "
                "(eval.features, evaluate --features): DINOv2's state dict (the official "
                "dinov2_vit?14_pretrain.pth or timm's weights; needs timm) or CLIP's .pt file. "
                "Without it they are read from torch's hub cache, downloaded there at first use.",
            ),
        ]
    ):
        command = option(command)
    return command


_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


@click.group(invoke_without_command=True)
@click.version_option(__version__, "--version", prog_name="gdpp-bench")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE|FILE.py",
    help="Import a module that registers losses, terms, models, datasets or metrics (repeatable; "
    "installed packages' gdpp_bench.plugins entry points are imported too).",
)
@click.pass_context
def cli(ctx: click.Context, plugins: tuple[str, ...]) -> None:
    """Train GANs under every loss variant of a suite, evaluate them, and report."""
    from gdpp_bench.plugins import load_plugins

    load_plugins(plugins)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def calibration_lines() -> list[str]:
    """'entry.value: sees only D1, D2' for every metric value the calibration ladder ran (the
    other defects it was given, it is blind to or moves the wrong way with)."""
    from gdpp_bench.metrics import METRICS, entry_sees, sees_phrase

    return [
        f"{name}.{value}: {sees_phrase(seen)}"
        for name in METRICS.names()
        for value, seen in entry_sees(name).items()
    ]


@cli.command("list")
def list_cmd() -> None:
    """Show the registered adversarial losses, terms, models, datasets, metrics and suites."""
    from gdpp_bench.data import DATASETS
    from gdpp_bench.losses import ADVERSARIAL, TERMS
    from gdpp_bench.metrics import METRICS
    from gdpp_bench.models import MODELS, MODIFIERS
    from gdpp_bench.suites import suite_description, suite_names

    for title, names in [
        ("adversarial losses", ADVERSARIAL.names()),
        ("diversity terms", TERMS.names()),
        ("discriminator modifiers (pacganN, mbstd[N])", MODIFIERS.names()),
        ("models", MODELS.names()),
        ("datasets", DATASETS.names()),
        ("metrics", METRICS.names()),
        ("fidelity feature extractors (eval.features; the first is the default)", FEATURE_EXTRACTORS),
    ]:
        click.echo(f"{title}: {', '.join(names)}")
    click.echo("what each metric value sees (gdpp-bench calibrate; results/calibration/):")
    for line in calibration_lines():
        click.echo(f"  {line}")
    click.echo("suites:")
    names = suite_names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"  {name:<{width}}  {suite_description(name)}")


_RUN_OPTIONS = [
    click.option(
        "--suite",
        required=True,
        help=(
            "Suite name (built in, or NAME.toml in a folder of $GDPP_BENCH_SUITES) or path to a .toml file."
        ),
    ),
    click.option("--results", default="results", show_default=True, type=click.Path(path_type=Path)),
    click.option(
        "--data-root",
        default=default_data_root,
        show_default="$GDPP_BENCH_DATA, else ../shared/datasets if present, else ~/.cache/gdpp-bench/data",
        help="Folder holding the image datasets (torchvision layouts).",
    ),
    click.option("--variants", help="Comma-separated variants replacing the suite's, e.g. bce,bce+gdpp@0.5"),
    click.option(
        "--datasets",
        "only_datasets",
        help="Comma-separated subset of the suite's datasets to run, e.g. ring8,grid25",
    ),
    click.option("--seeds", help="Comma-separated seeds replacing the suite's, e.g. 0,1,2"),
    click.option("--steps", type=int, help="Training steps replacing the suite's."),
    click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
    click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        help="Replaces the suite's: bf16 autocasts the forward passes.",
    ),
    click.option(
        "--compile/--no-compile",
        "compile_models",
        default=None,
        help="torch.compile G and D (replaces the suite's setting).",
    ),
    click.option(
        "--cuda-graph/--no-cuda-graph",
        "cuda_graph",
        default=None,
        help="On CUDA, replay each training step from one CUDA graph where the variant allows "
        "(default: the suite's setting, on).",
    ),
    click.option(
        "--executor",
        type=click.Choice(EXECUTORS),
        default="local",
        show_default=True,
        help="local: this machine, --workers processes (one GPU each when several are visible); "
        "slurm: each run one task of a Slurm job array (submitit).",
    ),
    click.option(
        "--workers",
        "--jobs",
        "workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="--executor local: runs trained in parallel processes.",
    ),
    click.option("--slurm-partition", help="Slurm partition [default: the cluster's]."),
    click.option(
        "--slurm-time",
        type=click.IntRange(min=1),
        help="Time limit of a run's task, minutes [default: 720]; a task that reaches it is "
        "requeued (3 times at most) and resumes from its checkpoint.",
    ),
    click.option(
        "--slurm-gpus",
        type=click.IntRange(min=0),
        help="GPUs per run [default: 0 with --device cpu/mps, else 1].",
    ),
    click.option("--slurm-cpus", type=click.IntRange(min=1), help="CPUs per run [default: 4]."),
    click.option(
        "--slurm-mem-gb",
        type=click.FloatRange(min=0, min_open=True),
        help="Memory per run in GB [default: the partition's].",
    ),
    click.option(
        "--slurm-array-parallelism",
        type=click.IntRange(min=1),
        help="Runs of the array running at once [default: 256].",
    ),
    click.option(
        "--slurm-folder",
        type=click.Path(path_type=Path),
        help="submitit's job files and logs [default: RESULTS/.submitit/%j].",
    ),
    click.option(
        "--seed-parallel",
        is_flag=True,
        help="Train the seeds of each variant as one batched model (mlp2d only; others run "
        "one by one). Same initial weights, data and noise per seed; results agree with "
        "sequential runs to float rounding.",
    ),
    click.option(
        "--eval-samples",
        type=int,
        help="Cap every evaluation sample count of the suite (generated, real, IvOM images) at N, "
        "for a quick look; recorded in the runs' config.",
    ),
    click.option(
        "--tensorboard/--no-tensorboard",
        default=None,
        help="Also write TensorBoard events into each run folder (tensorboard/): log.csv's values, "
        "periodic metrics, sample pictures (default: the suite's eval.tensorboard).",
    ),
    click.option(
        "--extend",
        is_flag=True,
        help="Continue finished runs whose only change is a larger --steps (or train.steps) from "
        "their last checkpoint; recorded in config.json.",
    ),
    click.option(
        "--force",
        is_flag=True,
        help="Set aside (NAME.replaced-TIMESTAMP, nothing deleted) run folders trained with other "
        "settings, and train those runs afresh.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print every run of the expanded suite, its folder and what run would do with it "
        "(train, resume, skip, refuse); train nothing, write no run folder. Like run, first check "
        "the data and instruments the runs need (downloading what can be) and exit 2 naming what "
        "is missing.",
    ),
    click.option(
        "--allow-underpowered",
        is_flag=True,
        help="Run a design that cannot reach a verdict (the smallest Holm-corrected p its seeds and "
        "comparisons allow is >= 0.05); recorded in the runs, and the report says so.",
    ),
]


def _run_options(*skipped: str):
    """The options `run` and `tune` share (those named in `skipped` left out), on one command."""

    def decorate(command):
        for option in reversed(_RUN_OPTIONS):
            if _param_name(option) not in skipped:
                command = option(command)
        return _evaluation_options(command)

    return decorate


def _param_name(option: Any) -> str:
    """The Python name of the parameter a click.option(...) decorator declares."""

    def bare() -> None: ...

    return option(bare).__click_params__[0].name


def _options_from(params: dict[str, Any]) -> Any:
    """The api.RunOptions the command line's parameters say (the one path to the runs)."""
    from gdpp_bench.api import RunOptions, SlurmOptions
    from gdpp_bench.progress import choose_style

    if params.get("extend") and params.get("force"):
        raise UserError(
            "--extend and --force exclude each other: --extend continues runs to more "
            "steps, --force sets them aside and trains afresh"
        )
    workers, executor = params.get("workers", 1), params.get("executor", "local")
    return RunOptions(
        results=params["results"],
        data_root=params["data_root"],
        variants=tuple(_split(params.get("variants")) or ()) or None,
        seeds=tuple(seeds) if (seeds := _seeds(params.get("seeds"))) is not None else None,
        datasets=tuple(_split(params.get("only_datasets")) or ()) or None,
        steps=params.get("steps"),
        device=params["device"],
        precision=params.get("precision"),
        compile=params.get("compile_models"),
        cuda_graph=params.get("cuda_graph"),
        eval_samples=params.get("eval_samples"),
        tensorboard=params.get("tensorboard"),
        executor=executor,
        workers=workers,
        slurm=SlurmOptions(
            partition=params.get("slurm_partition"),
            time_min=params.get("slurm_time"),
            gpus_per_run=params.get("slurm_gpus"),
            cpus_per_run=params.get("slurm_cpus"),
            mem_gb=params.get("slurm_mem_gb"),
            array_parallelism=params.get("slurm_array_parallelism"),
            folder=params.get("slurm_folder"),
        ),
        seed_parallel=params.get("seed_parallel", False),
        policy="extend" if params.get("extend") else "force" if params.get("force") else "refuse",
        protocol=params["protocol"],
        inception_weights=params.get("inception_weights"),
        batch_size=params["batch_size"],
        feature_weights=params.get("feature_weights"),
        progress=choose_style("auto", workers if executor == "local" else 2),
        allow_underpowered=params.get("allow_underpowered", False),
    )


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (`kill`, a Slurm job's preemption or time limit) stops `run` and `tune` as Ctrl-C
    does: every run in progress writes a checkpoint at its current step, one line, exit 130."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say_err(line: str) -> None:
    click.echo(line, err=True)


def _echo_outcome(outcome: dict) -> None:
    state = "skipped (done)" if outcome["skipped"] else outcome["status"]
    detail = outcome.get("reason") or _format_values(outcome["values"])
    click.echo(f"{outcome['key']}: {state}  {detail}")


@cli.command()
@_run_options()
def run(**params: Any) -> None:
    """Train and evaluate every run of a suite; finished runs are skipped, others resumed.

    Exit code: 0 every run done or skipped; 1 some run failed (diverged) or crashed; 2 a bad input
    (the command, or a run's folder or settings: that run refused, the others ran; data or an
    instrument the runs need missing: no run started); 130 Ctrl-C.
    """
    from gdpp_bench.api import echo_warning, execute_runs, missing_for, plan_runs
    from gdpp_bench.pipeline import EXIT_BAD_INPUT, EXIT_INTERRUPTED, plan_line

    options = _options_from(params)
    loaded, specs = plan_runs(params["suite"], options, warn=echo_warning)
    click.echo(f"suite {loaded.name}: {len(specs)} runs -> {options.results / loaded.name}")
    if params["dry_run"]:
        missing = missing_for(specs, options, warn=echo_warning)  # what run would refuse
        if missing:
            click.echo(f"error: {missing}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        for spec in specs:
            click.echo(plan_line(spec, options.results, options.policy))
        return
    try:
        with _sigterm_as_ctrl_c():
            _, tally = execute_runs(
                specs, options, on_result=_echo_outcome, announce=_say_err, warn=echo_warning
            )
    except Interrupted:
        sys.exit(EXIT_INTERRUPTED)  # run_specs said what it stopped (an earlier Ctrl-C: main says)
    click.echo(f"suite {loaded.name}: {tally.line()}")
    sys.exit(tally.exit_code())


@cli.command()
@_run_options("seeds", "seed_parallel")
@click.option(
    "--storage",
    help="Optuna storage shared by every process drawing trials: an RDB URL (sqlite:///FILE, "
    "postgresql://..., mysql://...) or a journal file path [default: sqlite:///RESULTS/SUITE/tuning.db].",
)
@click.option(
    "--sampler",
    type=click.Choice(("random", "tpe")),
    help="Replaces the suite's budget.sampler: random (Lucic et al.'s protocol; every trial's values "
    "fixed by the sampler seed) or tpe (Optuna's TPE, drawing as trials finish).",
)
@click.option(
    "--heartbeat",
    "heartbeat_s",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Seconds between a trial's heartbeats (RDB storages); a trial silent for 4 of them (its "
    "process killed) is enqueued again and resumes from its runs' checkpoints.",
)
def tune(**params: Any) -> None:
    """Give every variant of a suite the same tuning budget, then confirm each variant's best.

    The suite's [search] space and [budget]: per dataset and variant, budget.trials trials drawn by
    Optuna, each trained at every tuning seed (run folders VARIANT/trial-NNN/seed-K); then the best
    trial by the objective on the tuning seeds, trained at the confirmation seeds
    (VARIANT/confirm/seed-K), which the report's decision rule compares. Several processes or
    machines may run the same command on one --storage: each trial is drawn once. Exit codes as
    for run (a diverged trial is a result, not a failure).
    """
    from gdpp_bench.api import echo_warning
    from gdpp_bench.pipeline import EXIT_INTERRUPTED
    from gdpp_bench.suites import load_suite
    from gdpp_bench.tuning import TuneOptions, plan_lines, tune_suite

    options = _options_from(params)
    extra = TuneOptions(params["storage"], params["sampler"], params["heartbeat_s"])
    loaded = load_suite(params["suite"])
    click.echo(f"tune {loaded.name} -> {options.results / loaded.name}")
    if params["dry_run"]:
        for line in plan_lines(loaded, options, extra, warn=echo_warning):
            click.echo(line)
        return
    try:
        with _sigterm_as_ctrl_c():
            _, tuner = tune_suite(loaded, options, extra, _echo_outcome, click.echo, echo_warning, _say_err)
    except Interrupted:
        sys.exit(EXIT_INTERRUPTED)
    busy = f", {len(tuner.busy)} confirmation runs trained by another process" if tuner.busy else ""
    diverged = f", {tuner.diverged_runs} trial runs diverged" if tuner.diverged_runs else ""
    click.echo(f"tune {loaded.name}: {tuner.tally.line()}{diverged}{busy}")
    sys.exit(tuner.tally.exit_code())


@cli.command()
@click.option("--suite", required=True)
@click.option("--results", default="results", show_default=True, type=click.Path(path_type=Path))
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--data-root",
    default=default_data_root,
    show_default="as for run",
    help="Real data for the metrics' instruments (MNIST classifiers).",
)
@click.option("--force", is_flag=True, help="Recompute metrics that are already in metrics.json.")
@click.option(
    "--features",
    type=click.Choice(FEATURE_EXTRACTORS),
    metavar="NAME",
    help="Feature extractor of the fidelity metrics, instead of the suite's eval.features: "
    "inception-v3-compat (the default: each dataset's standard one, Inception-v3, or the project "
    "classifier for the MNIST family), dinov2-vit-{s,b,l,g}-14 or torch-fidelity's clip-* models "
    "(clip-vit-b-32, clip-vit-l-14, ...; `gdpp-bench list`). Another than the default names its "
    "values (dinov2-vit-l-14: fd_dinov2, kid_dinov2, precision_dinov2, ...; no IS) and "
    "re-measures the fidelity metric with it. DINOv2 and CLIP are ViTs (ViT-L/14: ~80 GFLOP an "
    "image): a GPU's work.",
)
@_evaluation_options
def evaluate(
    suite: str,
    results: Path,
    device: str,
    data_root: str,
    force: bool,
    features: str | None,
    protocol: str,
    inception_weights: str | None,
    batch_size: int,
    feature_weights: str | None,
) -> None:
    """Write metrics.json for every finished run of a suite (only what it lacks, unless --force)."""
    from gdpp_bench.api import echo_warning
    from gdpp_bench.metrics import EvalOptions
    from gdpp_bench.pipeline import evaluate_suite

    suite_dir = _suite_dir(results, suite)
    options = EvalOptions(protocol, inception_weights, batch_size, features, feature_weights)
    refused = False
    for outcome in evaluate_suite(suite_dir, device, force, data_root, options, warn=echo_warning):
        if outcome.get("user_error"):
            refused = True
            click.echo(f"error: {outcome['reason']}", err=True)
            continue
        detail = outcome.get("reason") or _format_values(outcome.get("values", {}))
        click.echo(f"{outcome['key']}: {outcome['status']}  {detail}")
    if refused:
        sys.exit(2)


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="PNG folder, FILE.npz or FILE.csv."
)
@click.option("--count", default=10_000, show_default=True, help="Samples to write.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    help="png: one PNG per image; npz: key images, uint8 NHWC; csv: x,y points (2D). Default: from --out.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, SEED_LIMIT - 1),
    default=0,
    show_default=True,
    help="Seed of the noise (same seed, same samples).",
)
@click.option(
    "--checkpoint",
    type=click.Choice(CHECKPOINT_CHOICES),
    default="auto",
    show_default=True,
    help="best.pt, checkpoint.pt, or auto: best.pt where the suite selects one.",
)
@click.option(
    "--sample-bn",
    type=click.Choice(BN_MODES),
    default="running",
    show_default=True,
    help="BatchNorm statistics: running (eval mode) or each chunk's own (as eval.sample_bn = batch).",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
def sample(
    run: Path, out: Path, count: int, fmt: str | None, seed: int, checkpoint: str, sample_bn: str, device: str
) -> None:
    """Write samples of a trained run (RESULTS/SUITE/VARIANT/seed-N) for tools outside the harness."""
    from gdpp_bench.environment import resolve_device
    from gdpp_bench.export import export_samples

    record = export_samples(
        run,
        out,
        count,
        fmt=fmt,
        seed=seed,
        checkpoint=checkpoint,
        bn=sample_bn,
        device=resolve_device(device),
    )
    click.echo(
        f"{out}: {count} samples of {record['key']} ({record['checkpoint']}, step {record['step']}, "
        f"seed {seed}, BatchNorm {sample_bn}) as {record['format']}"
    )


EXIT_REPORT_INCOMPLETE = 1  # report written; some run could not be read and is left out of its statistics


@cli.command()
@click.option("--suite", help="One suite's report; default: every suite under --results and an overview.")
@click.option("--results", default="results", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Default: RESULTS/SUITE/report (one suite) or RESULTS/report (overview).",
)
@click.option(
    "--baseline",
    default="bce",
    show_default=True,
    help="The variant every other is tested against (stars, significance.csv).",
)
@click.option(
    "--figures/--no-figures",
    "with_figures",
    default=True,
    show_default=True,
    help="--no-figures: the tables and index.html only, in seconds (figures take most of a report's time).",
)
@click.option(
    "--pdf/--no-pdf",
    default=False,
    show_default=True,
    help="Also save every figure as PDF (vector copies for papers; off by default).",
)
@click.option(
    "--last-k",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="A run's headline value is the mean of its last K periodic evaluations (runs "
    "without them: the final or the selected checkpoint); run folders are not touched.",
)
def report(
    suite: str | None,
    results: Path,
    out: Path | None,
    baseline: str,
    with_figures: bool,
    pdf: bool,
    last_k: int,
) -> None:
    """Tables with statistics, figures and index.html from the run folders (nothing is recomputed).

    Exit code 1 when some run folder could not be read: the report is written without it."""
    from gdpp_bench.losses import parse_variant
    from gdpp_bench.report import build_overview, build_report
    from gdpp_bench.report.figures.base import figure_formats

    baseline = str(parse_variant(baseline))
    with figure_formats(pdf):
        written = (
            build_report(_suite_dir(results, suite), out, baseline, with_figures, last_k)
            if suite
            else build_overview(results, out, baseline, with_figures, last_k)
        )
    for name, path in written.items():
        if not name.endswith(".pdf"):
            click.echo(f"wrote {path}")
    counts = _report_status_counts(written)
    what = f"report {suite}" if suite else "report"
    line = f"{what}: {sum(counts.values())} runs, " + ", ".join(f"{n} {s}" for s, n in counts.items())
    if counts["unreadable"]:
        line += " (runs.csv and index.html give each unreadable run's reason)"
    click.echo(line)
    if counts["unreadable"]:
        # The report is written, but it leaves runs out: a script or CI must not take it as whole.
        sys.exit(EXIT_REPORT_INCOMPLETE)


def _report_status_counts(written: dict[str, Path]) -> dict[str, int]:
    """How many runs the report's runs.csv files list, by status (a plug-in file gone or a
    truncated file makes a run unreadable)."""
    import csv

    counts = dict.fromkeys(("done", "failed", "incomplete", "unreadable"), 0)
    for name, path in written.items():
        if Path(name).name == "runs.csv":
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    status = row["status"].split(":")[0]  # failed: diverged..., unreadable: FILE
                    counts[status] = counts.get(status, 0) + 1
    return counts


@cli.command("archive")
@click.option("--suite", required=True, help="The suite whose runs are archived.")
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="The folder that holds the suite's run folders.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where OUT/SUITE/ gets the records (e.g. results/SUITE/runs, to commit beside its report).",
)
def archive(suite: str, results: Path, out: Path) -> None:
    """Copy each run's small records (config.json, metrics.json, DONE, log.csv, evals.csv) and the
    suite's tuning storage, without checkpoints or samples: `report --results OUT` reads them."""
    from gdpp_bench.archive import archive_suite

    done = archive_suite(results, suite, out)
    storages = "".join(f"; tuning storage {path}" for path in done.storages)
    click.echo(f"archived {done.runs} runs ({done.files} files) to {done.out}{storages}")


@cli.command("calibrate")
@click.option(
    "--datasets",
    default="ring8,grid25,mnist,fashion-mnist,stacked-mnist",
    show_default=True,
    help="Comma-separated datasets whose modes the project knows.",
)
@click.option("--draws", type=click.IntRange(min=2), default=5, show_default=True, help="Sets per level.")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("results/calibration"), show_default=True
)
@click.option("--data-root", default=default_data_root, show_default="as for run")
@click.option("--reduced", is_flag=True, help="1,000 samples and three levels per defect (a quick look).")
def calibrate_cmd(datasets: str, draws: int, out: Path, data_root: str, reduced: bool) -> None:
    """Build sets from held-out real data with controlled defects (mode dropping, mode imbalance,
    within-mode collapse, noise, blur) and record whether each metric sees them."""
    from gdpp_bench.calibration import calibrate

    table = calibrate(_split(datasets) or [], out, data_root, draws, reduced)
    click.echo(
        f"wrote {out}/calibration.csv ({len(table)} rows), levels.csv, values.csv, figures, protocol.md"
    )


@cli.group()
def instruments() -> None:
    """The project's measuring instruments (MNIST-family classifiers for FID/IS and mode counts)."""


@instruments.command("train")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Choice(CLASSIFIER_DATASETS),
    help="Classifier to train (repeatable). Default: all.",
)
@click.option("--data-root", default=default_data_root, show_default="as for run")
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="cpu",
    show_default=True,
    help="cpu gives the same weights on every machine.",
)
def instruments_train(datasets: tuple[str, ...], data_root: str, device: str) -> None:
    """Train (or find in the cache) the classifiers the metrics use; prints accuracy and file."""
    from gdpp_bench.environment import resolve_device
    from gdpp_bench.metrics.instruments import CLASSIFIER_DATASETS, load_or_train_classifier

    for dataset in datasets or CLASSIFIER_DATASETS:
        _, info = load_or_train_classifier(dataset, data_root, device=resolve_device(device))
        state = "trained" if info.trained else "cached"
        click.echo(f"{dataset}: {state}, test accuracy {info.test_accuracy:.4f}, {info.path}")


def _suite_dir(results: Path, suite: str) -> Path:
    suite_dir = results / suite
    if not suite_dir.is_dir():
        raise UserError(
            f"no results for suite {suite!r} in {suite_dir}; "
            f"run `gdpp-bench run --suite {suite}` first or pass --results"
        )
    return suite_dir


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    from gdpp_bench.environment import git_hash

    git_hash()  # pin the revision of the code this process imports, before anything can change it
    try:
        cli.main(args=argv, prog_name="gdpp-bench", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # Ctrl-C outside a suite's runs (which say what they stopped)
        click.echo(INTERRUPTED_BEFORE_ANY_RUN, err=True)
        sys.exit(130)  # pipeline.EXIT_INTERRUPTED, without importing torch here


if __name__ == "__main__":
    main()
