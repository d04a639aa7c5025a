"""Equal-budget tuning above the pipeline (`gdpp-bench tune`): per dataset and variant one Optuna
study of `budget.trials` trials drawn from the suite's [search] space, each trial trained at every
tuning seed as ordinary run folders; then each variant's best trial, chosen on the tuning seeds
only, is trained at the confirmation seeds, which are what the decision rule compares.

Reproducible draws: with the random sampler (Lucic et al.'s protocol) every trial's values are
drawn when the study is created, from (sampler seed, dataset, variant) alone, and enqueued; any
process, machine or Slurm task then takes the next waiting trial (Optuna's storage hands each to
one taker). A trial whose process was killed stops beating (Optuna's heartbeat, RDB storages) and
is enqueued again with the same values, its run folders resuming from their checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gdpp_bench.api import Outcome, RunOptions, echo_warning, execute_runs, finish, runs_of
from gdpp_bench.config import Budget, Distribution, RunSpec, Suite
from gdpp_bench.errors import UserError
from gdpp_bench.losses import Variant
from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.pipeline import Tally, plan_line
from gdpp_bench.power import check_design
from gdpp_bench.report.recipes import constraints_of
from gdpp_bench.report.tables import collect_runs
from gdpp_bench.report.tuning import select_trials, trial_table
from gdpp_bench.suites import expand, load_suite, parse_constraint

if TYPE_CHECKING:
    import optuna

STORAGE_FILE = "tuning.db"  # the default storage: SQLite in the suite's results folder
DEFAULT_HEARTBEAT_S = 30  # a trial's process records it is alive this often
GRACE_HEARTBEATS = 4  # ... and is taken for dead after this many intervals without a beat
CREATION_WAIT_S = 60  # how long a process waits for another to finish enqueueing a study's budget
BUDGET_INDEX = "budget_index"  # a trial's number within its variant's budget (its run folders')


@dataclass(frozen=True)
class TuneOptions:
    """What `tune` adds to `run`'s options."""

    storage: str | None = None  # an Optuna storage URL or journal file; None: RESULTS/SUITE/tuning.db
    sampler: str | None = None  # None: the suite's budget.sampler
    heartbeat_s: int = DEFAULT_HEARTBEAT_S


def storage_url(options: RunOptions, tune: TuneOptions, suite: str) -> str:
    return tune.storage or f"sqlite:///{(options.results / suite / STORAGE_FILE).resolve()}"


def open_storage(url: str, heartbeat_s: int) -> Any:
    """An Optuna storage: an RDB URL (SQLite, PostgreSQL, MySQL: with the heartbeat that tells
    a killed process's trials from live ones) or a journal file path (no heartbeat)."""
    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    sqlite = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    # two processes creating one SQLite file's tables at once collide: one creates, the other waits
    with _file_lock(sqlite.with_name(f".{sqlite.name}.lock") if sqlite else None), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 120}} if sqlite else None,
                heartbeat_interval=heartbeat_s,
                grace_period=heartbeat_s * GRACE_HEARTBEATS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
            )
        except Exception as exc:  # a bad URL, a missing driver, an unreachable server
            raise UserError(f"--storage {url}: cannot open it ({type(exc).__name__}: {exc})") from None


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive lock on `path` (created) for the block; nothing where `path` is None."""
    if path is None:
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def optuna_distribution(distribution: Distribution) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    low, high = (distribution.values + (None, None))[:2]
    if distribution.kind == "log_uniform":
        return FloatDistribution(float(low), float(high), log=True)
    if distribution.kind == "uniform":
        return FloatDistribution(float(low), float(high))
    if distribution.kind == "int_uniform":
        return IntDistribution(int(low), int(high))
    return CategoricalDistribution(list(distribution.values))


def search_space(suite: Suite, variant: str) -> dict[str, Any]:
    """The Optuna distributions of `variant`'s searched fields (`weight` only where it has a term)."""
    space = suite.search_of(variant)
    if not _parse(variant).terms:
        space.pop("weight", None)
    return {name: optuna_distribution(d) for name, d in sorted(space.items())}


def _parse(variant: str) -> Variant:
    from gdpp_bench.losses import parse_variant

    return parse_variant(variant)


def label_of(variant: str, space: dict[str, Any]) -> str:
    """The name a variant keeps in the report: without its term weight where the weight is searched."""
    parsed = _parse(variant)
    if "weight" not in space:
        return str(parsed)
    return "+".join([parsed.adversarial, *parsed.discriminator, *(name for name, _ in parsed.terms)])


def study_name(suite: str, dataset: str, variant: str) -> str:
    return f"{suite}/{dataset}/{variant}"


def _sampler_seed(budget: Budget, dataset: str, variant: str) -> int:
    text = f"{budget.sampler_seed}/{dataset}/{variant}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def draw_budget(budget: Budget, dataset: str, variant: str, space: dict[str, Any]) -> list[dict[str, Any]]:
    """The random sampler's values of every trial of the budget, from (sampler seed, dataset,
    variant) alone: an in-memory study draws them in trial order, so any process draws the same."""
    import optuna

    memory = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=_sampler_seed(budget, dataset, variant))
    )
    drawn = []
    for _ in range(budget.trials):
        trial = memory.ask(fixed_distributions=space)
        drawn.append(dict(trial.params))
        memory.tell(trial, 0.0)
    return drawn


def _design(suite: Suite, budget: Budget, variant: str, sampler: str) -> str:
    """What a stored study was drawn for; another design in the same storage is refused."""
    space = {name: dataclasses.asdict(d) for name, d in sorted(suite.search_of(variant).items())}
    return json.dumps(
        {"trials": budget.trials, "sampler": sampler, "sampler_seed": budget.sampler_seed, "search": space},
        sort_keys=True,
    )


def _direction(budget: Budget) -> optuna.study.StudyDirection:
    from optuna.study import StudyDirection

    return StudyDirection.MAXIMIZE if HIGHER_IS_BETTER[budget.objective.metric] else StudyDirection.MINIMIZE


def open_study(
    storage: Any, suite: Suite, dataset: str, variant: str, sampler: str, say: Callable[[str], None]
) -> optuna.Study:
    """The variant's study in `storage`, created with its whole budget enqueued (random sampler)
    by the first process; later ones load it, after checking it was drawn for the same design."""
    import optuna

    assert suite.budget is not None
    space = search_space(suite, variant)
    budget, name = suite.budget, study_name(suite.name, dataset, label_of(variant, space))
    design = _design(suite, budget, variant, sampler)
    chosen = (
        optuna.samplers.TPESampler(
            seed=_sampler_seed(budget, dataset, variant), constraints_func=_constraint_violations
        )
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=_sampler_seed(budget, dataset, variant))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, direction=_direction(budget), sampler=chosen
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(storage=storage, study_name=name, sampler=chosen)
            created = False
    if created:
        study.set_user_attr("design", design)
    else:
        recorded = _wait_for_attr(study, "design")
        if recorded is not None and recorded != design:
            raise UserError(
                f"the tuning storage holds study {name!r} drawn for another search space or budget; "
                "use another --results or --storage, or the suite file it was drawn for"
            )
    if sampler == "random":
        _enqueue_budget(study, budget, dataset, variant, space, created, say)
    return study


def _wait_for_attr(study: optuna.Study, key: str) -> Any:
    deadline = time.monotonic() + CREATION_WAIT_S
    while key not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)
    return study.user_attrs.get(key)


def _enqueue_budget(
    study: optuna.Study,
    budget: Budget,
    dataset: str,
    variant: str,
    space: dict[str, Any],
    created: bool,
    say: Callable[[str], None],
) -> None:
    """Enqueue every trial of the budget once: the creating process does; a later one waits for
    it and completes what a creator killed midway left out."""
    if not created and _wait_for_attr(study, "enqueued") is not None:
        return
    present = {t.user_attrs.get(BUDGET_INDEX) for t in study.get_trials(deepcopy=False)}
    missing = [i for i in range(budget.trials) if i not in present]
    for index, params in enumerate(draw_budget(budget, dataset, variant, space)):
        if index in missing:
            study.enqueue_trial(params, user_attrs={BUDGET_INDEX: index})
    study.set_user_attr("enqueued", budget.trials)
    if missing:
        say(f"{study.study_name}: {len(missing)} trials drawn and enqueued")


def _enqueue_missing(
    study: optuna.Study, budget: Budget, dataset: str, variant: str, space: dict[str, Any]
) -> None:
    """Enqueue again, with their drawn values, budget trials no trial accounts for (a process
    killed after its trial failed and before enqueueing it again leaves such a gap)."""
    from optuna.trial import TrialState

    accounted = {
        t.user_attrs[BUDGET_INDEX]
        for t in study.get_trials(deepcopy=False)
        if BUDGET_INDEX in t.user_attrs
        and (t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE) or not _retried(t))
    }
    missing = [i for i in range(budget.trials) if i not in accounted]
    if missing:
        drawn = draw_budget(budget, dataset, variant, space)
        for index in missing:
            study.enqueue_trial(drawn[index], user_attrs={BUDGET_INDEX: index})


def _constraint_violations(trial: optuna.trial.FrozenTrial) -> list[float]:
    """TPE's constraints: <= 0 where a constraint holds (recorded by the trial's objective)."""
    return [float(v) for v in trial.user_attrs.get("violations", [])]


class TrialDiverged(Exception):
    """A run of the trial diverged: the trial fails and ranks last in selection."""


class TrialStopped(Exception):
    """A run of the trial could not finish (refused, crashed): the trial is enqueued again."""


def trial_specs(
    suite: Suite, base: list[RunSpec], params: dict[str, Any], index: int, label: str, role: str
) -> list[RunSpec]:
    """The runs of one trial (role "trial", one per tuning seed in `base`) or of the confirmation
    of trial `index` (role "confirm"): the base runs with the drawn values, in their own folders."""
    assert suite.budget is not None
    specs = []
    for spec in base:
        train = dataclasses.replace(spec.train, **{k: v for k, v in params.items() if k != "weight"})
        variant = spec.variant
        if "weight" in params:
            variant = dataclasses.replace(
                variant, terms=tuple((n, float(params["weight"])) for n, _ in variant.terms)
            )
        prefix = f"{spec.dataset}/" if len(suite.datasets) > 1 else ""
        folder = f"trial-{index:03d}" if role == "trial" else "confirm"
        specs.append(
            dataclasses.replace(
                spec,
                variant=variant,
                train=train,
                label=label,
                role=role,
                trial=index,
                objective=suite.budget.objective,
                trials=suite.budget.trials,
                key=f"{prefix}{label}/{folder}/seed-{spec.seed}",
            )
        )
    return specs


def score_trial(runs: pd.DataFrame) -> dict[str, Any]:
    """A trial's objective, constraint values, feasibility, failure and CPU seconds from its runs,
    as the report's tuning table reads them (headline values aggregated over the tuning seeds)."""
    (row,) = trial_table(runs).to_dict("records")
    constraints = {text: float(row[parse_constraint(text)[0]]) for text in constraints_of(row["constraints"])}
    return {
        "objective": float(row["objective"]),
        "constraints": constraints,
        "feasible": bool(row["feasible"]),
        "failed": bool(row["failed"]),
        "cpu_s": float(row["cpu_s"]),
    }


@dataclass
class Tuner:
    """One `tune` call: the suite, its options and what it has said and tallied so far."""

    suite: Suite
    options: RunOptions
    tune: TuneOptions
    on_result: Callable[[Outcome], None] | None
    say: Callable[[str], None]
    announce: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.tally = Tally()
        self.busy: list[str] = []  # confirmation runs another process is training
        self.diverged_runs = 0  # trial runs that diverged (their trials failed)
        self.budget: Budget = self.suite.budget  # type: ignore[assignment]
        self.sampler = self.tune.sampler or self.budget.sampler

    def base_specs(self, seeds: tuple[int, ...], variant: str | None = None) -> list[RunSpec]:
        return expand(
            self.suite,
            [variant] if variant else (list(self.options.variants) if self.options.variants else None),
            list(seeds),
            self.options.steps,
            self.options.precision,
            self.options.compile,
            self.options.cuda_graph,
            self.options.eval_samples,
            datasets=list(self.options.datasets) if self.options.datasets else None,
            tensorboard=self.options.tensorboard,
            data_root=self.options.root,
        )

    def variants(self) -> list[str]:
        return (
            [str(_parse(v)) for v in self.options.variants]
            if self.options.variants
            else list(self.suite.variants)
        )

    def datasets(self) -> list[str]:
        return [d for d in self.suite.datasets if not self.options.datasets or d in self.options.datasets]

    def confirm_design(self) -> list[RunSpec]:
        """The confirmation runs as the power check sees them (values not yet selected)."""
        specs = []
        for variant in self.variants():
            base = self.base_specs(self.budget.confirm_seeds, variant)
            label = label_of(variant, search_space(self.suite, variant))
            specs += [dataclasses.replace(s, label=label, role="confirm") for s in base]
        return specs

    def heard(self, outcome: Outcome) -> None:
        if outcome.get("busy"):
            self.busy.append(outcome["key"])
            return
        self.outcomes.append(outcome)
        if "/trial-" in outcome["key"] and outcome["status"] == "failed":
            self.diverged_runs += 1  # the trial fails and ranks last: a result, not an error
        else:
            self.tally.add(outcome)
        if self.on_result is not None:
            self.on_result(outcome)

    def run_trials(self, studies: list[tuple[str, str, optuna.Study]], heartbeat: bool) -> None:
        """Take waiting trials, the first study's first, until no study has one left; then wait
        for the trials running elsewhere (`heartbeat`: the storage tells a killed process's
        trials, which are enqueued again and taken here). Another process busy with a study's last
        trial never keeps this one from the next study's trials."""
        import optuna
        from optuna.trial import TrialState

        while True:
            running: list[str] = []
            for dataset, variant, study in studies:
                if heartbeat:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)
                space = search_space(self.suite, variant)
                if self.sampler == "random":
                    _enqueue_missing(study, self.budget, dataset, variant, space)
                states = [t.state for t in study.get_trials(deepcopy=False) if BUDGET_INDEX in t.user_attrs]
                if TrialState.WAITING in states or (self.sampler == "tpe" and self._tpe_open(study)):
                    base = [
                        s for s in self.base_specs(self.budget.tuning_seeds, variant) if s.dataset == dataset
                    ]
                    self._one_trial(study, space, base, label_of(variant, space))
                    break
                running += [study.study_name] * states.count(TrialState.RUNNING)
            else:
                if not running:
                    return
                if not heartbeat:
                    raise UserError(
                        f"{len(running)} trials ({', '.join(sorted(set(running)))}) are marked running by "
                        "another process (or one that was killed: a journal file has no heartbeat to "
                        "tell); rerun when they have finished, or use an RDB --storage"
                    )
                self.say(
                    f"waiting for {len(running)} trials running elsewhere (a killed process's trial "
                    f"is retried after {self.tune.heartbeat_s * GRACE_HEARTBEATS} s)"
                )
                time.sleep(self.tune.heartbeat_s)

    def _tpe_open(self, study: optuna.Study, before: int | None = None) -> bool:
        """TPE draws as it goes: a new trial is due while the budget has room (counting only the
        trials numbered below `before`, when given: may that trial join the budget?)."""
        from optuna.trial import TrialState

        counted = {
            t.user_attrs[BUDGET_INDEX]
            for t in study.get_trials(deepcopy=False)
            if BUDGET_INDEX in t.user_attrs
            and (before is None or t.number < before)
            and not _retried(t)
            and t.state != TrialState.PRUNED
        }
        return len(counted) < self.budget.trials

    def _one_trial(self, study: optuna.Study, space: dict[str, Any], base: list[RunSpec], label: str) -> None:
        import optuna

        taken: list[optuna.trial.Trial] = []

        def objective(trial: optuna.trial.Trial) -> float:
            taken.append(trial)
            if BUDGET_INDEX not in trial.user_attrs:
                if self.sampler != "tpe" or not self._tpe_open(study, before=trial.number):
                    trial.set_user_attr("outside_budget", True)  # another process took the last one
                    raise optuna.TrialPruned("outside the budget")
                trial.set_user_attr(BUDGET_INDEX, trial.number)
            return self._train_trial(trial, space, base, label)

        try:
            study.optimize(objective, n_trials=1, catch=(TrialDiverged,))
        except (KeyboardInterrupt, TrialStopped) as exc:
            if taken:
                self._requeue(study, taken[0])
            if isinstance(exc, TrialStopped):
                raise UserError(str(exc)) from None
            raise

    def _requeue(self, study: optuna.Study, trial: optuna.trial.Trial) -> None:
        """Enqueue an interrupted trial again with its values (its runs resume from checkpoints)."""
        import optuna

        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not lose it
        try:
            (frozen,) = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
            if frozen.state == optuna.trial.TrialState.RUNNING:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                (frozen,) = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.RetryHeartbeatStaleTrialCallback()(study, frozen)
        finally:
            signal.signal(signal.SIGINT, previous)

    def _train_trial(
        self, trial: optuna.trial.Trial, space: dict[str, Any], base: list[RunSpec], label: str
    ) -> float:
        params = {name: _suggest(trial, name, distribution) for name, distribution in space.items()}
        index = int(trial.user_attrs[BUDGET_INDEX])
        specs = trial_specs(self.suite, base, params, index, label, "trial")
        self.say(f"{self.suite.name} {base[0].dataset} {label}: trial {index} ({_shown(params)})")
        outcomes, tally = execute_runs(specs, self.options, self.heard, self.announce)
        if any(o.get("busy") or o["status"] == "incomplete" for o in outcomes):
            first = next(o for o in outcomes if o.get("busy") or o["status"] == "incomplete")
            raise TrialStopped(
                f"trial {index} of {label}: {first['key']}: {first.get('reason', 'incomplete')}"
            )
        score = score_trial(runs_of(self.options.results, specs))
        trial.set_user_attr("constraints", score["constraints"])
        trial.set_user_attr("violations", [_violation(t, v) for t, v in score["constraints"].items()])
        trial.set_user_attr("cpu_s", score["cpu_s"])
        trial.set_user_attr("feasible", score["feasible"])
        if score["failed"]:
            trial.set_user_attr("diverged", True)
            self.say(f"{label}: trial {index} failed (a tuning seed diverged)")
            raise TrialDiverged(f"trial {index} diverged")
        value = score["objective"]
        self.say(
            f"{label}: trial {index}: {self.budget.objective.metric} = {value:.4g}"
            + "".join(f", {t.split()[0]} = {v:.4g}" for t, v in score["constraints"].items())
            + ("" if score["feasible"] else " (violates a constraint)")
        )
        if not math.isfinite(value):
            trial.set_user_attr("no_value", True)
            raise TrialDiverged(f"trial {index} has no {self.budget.objective.metric}")
        return value

    def confirm(self) -> list[RunSpec]:
        """Train every variant's selected trial at the confirmation seeds (after all its trials)."""
        suite_dir = self.options.results / self.suite.name
        runs = collect_runs(suite_dir)
        if "role" not in runs.columns:
            raise UserError(f"no trial runs under {suite_dir}")
        trials = trial_table(runs[(runs["role"] == "trial") & (runs["trial"] < self.budget.trials)])
        chosen = select_trials(trials)
        specs = []
        for dataset in self.datasets():
            for variant in self.variants():
                space = search_space(self.suite, variant)
                label = label_of(variant, space)
                row = chosen[(chosen["dataset"] == dataset) & (chosen["variant"] == label)]
                if row.empty:
                    raise UserError(
                        f"{dataset} {label}: no trial to confirm (every trial failed); its budget is spent"
                    )
                index = int(row["trial"].iloc[0])
                params = self._params_of(dataset, label, index, space)
                base = [
                    s for s in self.base_specs(self.budget.confirm_seeds, variant) if s.dataset == dataset
                ]
                specs += trial_specs(self.suite, base, params, index, label, "confirm")
                self.say(f"{dataset} {label}: confirming trial {index} at {len(base)} seeds")
        return specs

    def _params_of(self, dataset: str, label: str, index: int, space: dict[str, Any]) -> dict[str, Any]:
        """The drawn values of trial `index`, as its first run folder recorded them."""
        from gdpp_bench.rundir import RunDir

        prefix = f"{dataset}/" if len(self.suite.datasets) > 1 else ""
        folder = self.options.results / self.suite.name / f"{prefix}{label}" / f"trial-{index:03d}"
        run = RunDir(folder / f"seed-{self.budget.tuning_seeds[0]}")
        recorded = RunSpec.from_dict(run.read_config()["spec"])
        params = {name: getattr(recorded.train, name) for name in space if name != "weight"}
        if "weight" in space:
            params["weight"] = recorded.variant.terms[0][1]
        return params


def _shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _retried(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial failed by the heartbeat (or a Ctrl-C) whose values were enqueued again."""
    from optuna.trial import TrialState

    return (
        trial.state == TrialState.FAIL
        and not trial.user_attrs.get("diverged")
        and not trial.user_attrs.get("no_value")
    )


def _suggest(trial: optuna.trial.Trial, name: str, distribution: Any) -> Any:
    """The trial's value of `name` (an enqueued trial's fixed value, else the sampler's draw)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high)
    return trial.suggest_categorical(name, distribution.choices)


def _violation(text: str, value: float) -> float:
    _, op, bound = parse_constraint(text)
    if not math.isfinite(value):
        return 1.0
    return bound - value if op in (">=", ">") else value - bound


def counted_trials(trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    """The budget indices of a study's finished budget trials, each as often as it was counted:
    completed, or failed by divergence or for want of a value; a trial failed by the heartbeat or
    a Ctrl-C (enqueued again), one still waiting or running, or one outside the budget is not."""
    from optuna.trial import TrialState

    return [
        int(t.user_attrs[BUDGET_INDEX])
        for t in trials
        if BUDGET_INDEX in t.user_attrs
        and (t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not _retried(t)))
    ]


def tune_suite(
    suite: Suite,
    options: RunOptions,
    tune: TuneOptions,
    on_result: Callable[[Outcome], None] | None = None,
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> tuple[list[RunSpec], Tuner]:
    """Every trial of the budget, then the confirmation runs; the confirmation runs and the tuner
    (its outcomes, tally and the confirmation runs left to other processes)."""
    tuner = _tuner(suite, options, tune, on_result, say, warn, announce)
    url = storage_url(options, tune, suite.name)
    storage = open_storage(url, tune.heartbeat_s)
    studies = [
        (dataset, variant, open_study(storage, suite, dataset, variant, tuner.sampler, say))
        for dataset in tuner.datasets()
        for variant in tuner.variants()
    ]
    tuner.run_trials(studies, heartbeat="://" in url)
    confirmations = tuner.confirm()
    execute_runs(confirmations, options, tuner.heard, announce)
    return confirmations, tuner


def _tuner(
    suite: Suite,
    options: RunOptions,
    tune: TuneOptions,
    on_result: Callable[[Outcome], None] | None,
    say: Callable[[str], None],
    warn: Callable[[str], None] | None,
    announce: Callable[[str], None] | None,
) -> Tuner:
    if suite.budget is None or not suite.search:
        raise UserError(
            f"suite {suite.name!r} has no [search] and [budget]: `tune` needs both "
            "(README: Fair comparisons); `gdpp-bench run` trains it as it is"
        )
    if options.seeds is not None:
        raise UserError("tune trains the budget's tuning_seeds and confirm_seeds; --seeds is for run")
    if options.seed_parallel:
        raise UserError("--seed-parallel is for run; tune trains each trial's seeds as separate runs")
    if tune.sampler not in (None, "random", "tpe"):
        raise UserError(f"--sampler must be random or tpe, got {tune.sampler!r}")
    if tune.heartbeat_s < 1:
        raise UserError(f"--heartbeat must be >= 1 second, got {tune.heartbeat_s}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial is said in one line of ours
    tuner = Tuner(suite, options, tune, on_result, say, announce)
    _, note = check_design(
        tuner.confirm_design(),
        subset=bool(options.variants),
        allow_underpowered=options.allow_underpowered,
    )
    if note and warn is not None:
        warn(note)
    _check_needs(tuner, warn)
    return tuner


def _check_needs(tuner: Tuner, warn: Callable[[str], None] | None) -> None:
    """Before the storage is opened and any trial drawn: the data and instruments every run of
    the budget reads (trials and confirmations alike; gdpp_bench.preflight), not only the first
    trial's. Anything missing is one UserError naming it and how to get it; `warn` hears of
    non-standard Inception weights. Not for Slurm runs (their tasks read the data where they run)."""
    from gdpp_bench.preflight import check, needs_of

    options = tuner.options
    if options.executor == "slurm":
        return
    seeds = (*tuner.budget.tuning_seeds, *tuner.budget.confirm_seeds)
    found = check(
        map(needs_of, tuner.base_specs(seeds)),
        options.root,
        options.inception_weights,
        options.feature_weights,
    )
    found.tell(warn)
    if found.missing:
        raise UserError(f"{found.line()} (nothing tuned)")


def plan_lines(
    suite: Suite, options: RunOptions, tune: TuneOptions, warn: Callable[[str], None] | None = None
) -> Iterator[str]:
    """--dry-run: each trial's values (random sampler: drawn as the study will draw them) and what
    `run` would do with each of its run folders; nothing is written, the storage is not opened.
    Missing data or instruments raise UserError first, as `tune` would (`warn`: its warnings)."""
    tuner = _tuner(suite, options, tune, None, print, warn, None)
    budget = tuner.budget
    yield (
        f"budget: {budget.trials} trials per variant x {len(budget.tuning_seeds)} tuning seeds, "
        f"then {len(budget.confirm_seeds)} confirmation seeds; sampler {tuner.sampler}; "
        f"storage {storage_url(options, tune, suite.name)}"
    )
    for dataset in tuner.datasets():
        for variant in tuner.variants():
            space = search_space(suite, variant)
            label = label_of(variant, space)
            base = [s for s in tuner.base_specs(budget.tuning_seeds, variant) if s.dataset == dataset]
            drawn = draw_budget(budget, dataset, variant, space) if tuner.sampler == "random" else []
            for index in range(budget.trials):
                if index >= len(drawn):
                    yield f"{dataset} {label}: trial {index}: values drawn by TPE as the trials finish"
                    continue
                yield f"{dataset} {label}: trial {index}: {_shown(drawn[index])}"
                for spec in trial_specs(suite, base, drawn[index], index, label, "trial"):
                    yield plan_line(spec, options.results, options.policy)
            seeds = ", ".join(map(str, budget.confirm_seeds))
            yield f"{dataset} {label}: then its best trial at seeds {seeds}"


def _quiet(line: str) -> None:
    del line


def tune(
    suite: str | Path | Suite,
    results: str | Path = "results",
    *,
    storage: str | None = None,
    sampler: str | None = None,
    heartbeat_s: int = DEFAULT_HEARTBEAT_S,
    on_result: Callable[[Outcome], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Give every variant of `suite` the same tuning budget, as `gdpp-bench tune` does: its [budget]
    trials drawn from its [search] space (Optuna; `storage` an RDB URL or journal file, default
    SQLite in the suite's results folder), each at every tuning seed, then each variant's best
    trial (tuning seeds only) at the confirmation seeds. `options` are `run_suite`'s.

    Returns the rows (as `load_runs`) of the trials' and confirmations' runs; raises UserError on
    a bad input and `RunsNotDone` when some run was refused, failed or did not finish."""
    chosen = RunOptions.of(results, **options)
    loaded = suite if isinstance(suite, Suite) else load_suite(str(suite))
    _, tuner = tune_suite(
        loaded, chosen, TuneOptions(storage, sampler, heartbeat_s), on_result, say=_quiet, warn=echo_warning
    )
    runs = collect_runs(chosen.results / loaded.name)
    return finish(tuner.outcomes, tuner.tally, runs, "tune")
