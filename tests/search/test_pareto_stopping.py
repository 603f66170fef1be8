"""`ParetoStopping` on a toy problem with a known answer: cost is a width known up front, accuracy climbs
linearly to a final value that the learning rate sets (0.01 is best at every width), so the true front is rate
0.01 at the five widths. Hopeless trials stop, no trial of the true front does, two journal handles share the
curves, and bad arguments are rejected with the expected value."""

from __future__ import annotations

import doctest
import itertools
import math
import re
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from autopeft.objectives import Direction
from autopeft.search import ParetoStopping

WIDTHS = [1, 2, 4, 8, 16]
RATES = [0.001, 0.01, 0.1]
GRID: dict[str, Sequence[float]] = {"width": WIDTHS, "rate": RATES}
SLOPE = {0.001: 0.055, 0.01: 0.1, 0.1: 0.025}
STEPS = 4  # checkpoints 0-3 are reported; the trial ends at the fifth evaluation
Config = tuple[int, float]
Vector = Callable[[float, int], list[float]]  # (accuracy, width) -> the objectives


def final_accuracy(width: int, rate: float) -> float:
    return 0.5 + SLOPE[rate] * math.log2(2 * width)


def accuracy_and_cost(accuracy: float, width: int) -> list[float]:
    return [accuracy, width]


def loss_cost_and_latency(accuracy: float, width: int) -> list[float]:
    """Three objectives, all minimised, the quality one (loss) among them."""
    return [1.0 - accuracy, width, 0.5 * width + 1.0]


def new_study(
    directions: Sequence[Direction] = ("maximize", "minimize"),
    names: Sequence[str] = ("accuracy", "cost"),
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    study = optuna.create_study(directions=list(directions), sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))
    return study


def toy_objective(stopping: ParetoStopping, vector: Vector = accuracy_and_cost) -> Callable[..., list[float]]:
    """The objective of the class docstring, for any vector of objectives built from (accuracy, width)."""

    def objective(trial: optuna.Trial) -> list[float]:
        width = trial.suggest_categorical("width", WIDTHS)
        rate = trial.suggest_categorical("rate", RATES)
        final = final_accuracy(width, rate)
        for step in range(STEPS):
            if stopping.should_stop(trial, step, vector(final * (step + 1) / (STEPS + 1), width)):
                raise optuna.TrialPruned()
        return vector(final, width)

    return objective


def run_configs(study: optuna.Study, stopping: ParetoStopping, configs: Sequence[Config]) -> None:
    for width, rate in configs:
        study.enqueue_trial({"width": width, "rate": rate})
    study.optimize(toy_objective(stopping), n_trials=len(configs))


def ask_config(study: optuna.Study, width: int, rate: float) -> optuna.Trial:
    study.enqueue_trial({"width": width, "rate": rate})
    trial = study.ask()
    trial.suggest_categorical("width", WIDTHS)
    trial.suggest_categorical("rate", RATES)
    return trial


def true_front(vector: Vector, directions: Sequence[Direction]) -> set[Config]:
    """The configurations whose final vector no other configuration of the grid dominates."""
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    finals = {
        (w, r): [s * v for s, v in zip(signs, vector(final_accuracy(w, r), w), strict=True)]
        for w, r in itertools.product(WIDTHS, RATES)
    }

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return {c for c, v in finals.items() if not any(dominates(o, v) for o in finals.values())}


def configs_in(study: optuna.Study, state: TrialState) -> set[Config]:
    return {(t.params["width"], t.params["rate"]) for t in study.get_trials(states=[state])}


def test_the_class_docstring_example_runs() -> None:
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for test in finder.find(ParetoStopping, globs={}):
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0 and results.attempted > 0


def test_a_trial_dominated_even_with_the_best_gain_seen_is_stopped() -> None:
    study = new_study()
    stopping = ParetoStopping(study, quality="accuracy")
    run_configs(study, stopping, [(1, 0.01), (2, 0.01), (4, 0.01)])  # finals 0.6, 0.7, 0.8
    # At step 0 the best gain seen is width 4's: 0.8 - 0.16 = 0.64.
    hopeless = ask_config(study, 8, 0.1)  # 0.12 + 0.64 = 0.76 <= 0.8, and cost 4 <= 8
    promising = ask_config(study, 8, 0.01)  # 0.18 + 0.64 = 0.82: no complete trial reaches it at cost <= 8
    assert stopping.should_stop(hopeless, 0, [0.12, 8])
    assert not stopping.should_stop(promising, 0, [0.18, 8])


def test_no_trial_of_the_true_front_is_stopped_and_the_hopeless_are() -> None:
    front = true_front(accuracy_and_cost, ["maximize", "minimize"])
    assert front == {(width, 0.01) for width in WIDTHS}
    pruned = 0
    for seed in range(5):
        study = new_study(sampler=optuna.samplers.GridSampler(GRID, seed=seed))
        study.optimize(toy_objective(ParetoStopping(study, quality="accuracy")))
        assert not configs_in(study, TrialState.PRUNED) & front
        assert {(t.params["width"], t.params["rate"]) for t in study.best_trials} == front
        pruned += len(configs_in(study, TrialState.PRUNED))
    assert pruned >= 20  # 27 of the 75 trials of seeds 0-4


def test_a_minimised_quality_objective_among_three_is_granted_its_gain_downwards() -> None:
    directions: list[Direction] = ["minimize", "minimize", "minimize"]
    front = true_front(loss_cost_and_latency, directions)
    assert front == {(width, 0.01) for width in WIDTHS}
    pruned = 0
    for seed in range(5):
        study = new_study(
            directions, ["loss", "cost", "latency"], optuna.samplers.GridSampler(GRID, seed=seed)
        )
        study.optimize(toy_objective(ParetoStopping(study, quality="loss"), loss_cost_and_latency))
        assert not configs_in(study, TrialState.PRUNED) & front
        pruned += len(configs_in(study, TrialState.PRUNED))
    assert pruned >= 20


def test_nothing_stops_before_min_complete_trials_have_reported_the_step() -> None:
    study = new_study()
    run_configs(study, ParetoStopping(study, quality="accuracy"), [(2, 0.01), (4, 0.01)])
    hopeless = ask_config(study, 8, 0.1)
    assert not ParetoStopping(study, quality="accuracy").should_stop(hopeless, 0, [0.12, 8])
    assert ParetoStopping(study, quality=0, min_complete_trials=2).should_stop(hopeless, 0, [0.12, 8])
    assert not ParetoStopping(study, quality=0, min_complete_trials=2).should_stop(hopeless, 9, [0.12, 8])


def test_two_handles_on_one_journal_file_stop_each_others_hopeless_trials(tmp_path: Path) -> None:
    journal = str(tmp_path / "study.journal")
    writer = optuna.create_study(
        study_name="toy",
        storage=JournalStorage(JournalFileBackend(journal)),
        directions=["maximize", "minimize"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        writer.set_metric_names(["accuracy", "cost"])
    run_configs(writer, ParetoStopping(writer, quality="accuracy"), [(1, 0.01), (2, 0.01), (4, 0.01)])
    reader = optuna.load_study(study_name="toy", storage=JournalStorage(JournalFileBackend(journal)))
    hopeless = ask_config(reader, 8, 0.1)
    assert ParetoStopping(reader, quality="accuracy").should_stop(hopeless, 0, [0.12, 8])
    reader.tell(hopeless, state=TrialState.PRUNED)
    stored = optuna.load_study(study_name="toy", storage=JournalStorage(JournalFileBackend(journal))).trials
    assert stored[-1].state == TrialState.PRUNED
    assert stored[-1].user_attrs[ParetoStopping.CURVE_ATTR] == [{"step": 0, "values": [0.12, 8.0]}]
    assert len(stored[0].user_attrs[ParetoStopping.CURVE_ATTR]) == STEPS


def test_an_unknown_objective_name_is_rejected_with_the_study_objectives() -> None:
    expected = (
        "quality: expected one of the study's objectives 'accuracy', 'cost' (or an index 0-1), got 'acc'"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        ParetoStopping(new_study(), quality="acc")


def test_an_objective_name_without_metric_names_asks_for_an_index() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    expected = (
        "quality: expected an objective index 0-1 "
        "(the study has no metric names: see study.set_metric_names), got 'accuracy'"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        ParetoStopping(study, quality="accuracy")


def test_a_values_vector_of_the_wrong_length_is_rejected_with_the_objectives() -> None:
    study = new_study()
    stopping = ParetoStopping(study, quality="accuracy")
    trial = ask_config(study, 8, 0.1)
    expected = "values: expected 2 values, one per objective (accuracy, cost), got 3"
    with pytest.raises(ValueError, match=re.escape(expected)):
        stopping.should_stop(trial, 0, [0.12, 8, 1.0])


def test_out_of_range_settings_are_rejected_with_the_expected_range() -> None:
    with pytest.raises(ValueError, match=re.escape("gain_quantile: expected a number in [0, 1], got 1.5")):
        ParetoStopping(new_study(), quality="accuracy", gain_quantile=1.5)
    with pytest.raises(ValueError, match=re.escape("min_complete_trials: expected an integer >= 1, got 0")):
        ParetoStopping(new_study(), quality="accuracy", min_complete_trials=0)


def test_importing_autopeft_search_loads_neither_torch_nor_ray() -> None:
    code = "import sys, autopeft.search; print([m for m in ('torch', 'ray') if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
