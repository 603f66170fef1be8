"""The default `autopeft` sampler: exact-cost candidate filtering, multi-fidelity stopping of trials that
cannot reach the front, warm starts from method signals, a real tiny-model search through the CLI, and a
sampler that survives pickling (Ray Tune checkpoints it)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest

from autopeft.cli import main
from autopeft.model_layout import ModelLayout
from autopeft.pareto import trial_rows
from autopeft.search.budgeted_sampler import BudgetedParetoSampler
from autopeft.search.method_signals import SIGNALS_KEY, method_signals
from autopeft.search.optuna_driver import OptunaReporter
from autopeft.search.plan_probe import CandidateFacts, PlanProbe
from autopeft.search.samplers import OPTUNA_STARTUP_TRIALS, make_sampler
from autopeft.search_space import SamplerConfig, SearchSpace
from autopeft.storage.run_directory import RunDirectory
from tests.space_files import write_space

SPACE = {
    "rank.query": optuna.distributions.CategoricalDistribution([0, 4, 16]),
    "rank.value": optuna.distributions.CategoricalDistribution([0, 4, 16]),
    "layers.top": optuna.distributions.CategoricalDistribution([1, 2]),
}
LIMIT = 8 * 2 * 64  # rank sum 8 on both layers, or 16 on one: half the plans are over it


def probe(params: dict[str, Any]) -> CandidateFacts:
    """Cost of a toy plan: rank x 64 per adapted module in the top `layers.top` of two layers."""
    layers = range(2 - params["layers.top"], 2)
    modules = frozenset(
        f"L{layer}.{name}" for layer in layers for name in ("query", "value") if params[f"rank.{name}"]
    )
    cost = 64 * params["layers.top"] * (params["rank.query"] + params["rank.value"])
    return CandidateFacts(cost, cost <= LIMIT, modules)


def metric(params: dict[str, Any]) -> float:
    """A task metric that grows with value's rank and the layer count, and less with query's."""
    return 0.6 + 0.01 * params["rank.value"] + 0.004 * params["rank.query"] + 0.03 * params["layers.top"]


def new_study(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["task_metric", "trainable_parameters"])
    return study


def add_trial(study: optuna.Study, params: dict[str, Any], value: float, **attrs: Any) -> None:
    curve = [{"task_metric": value - 0.05}, {"task_metric": value}]
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions=SPACE,
            values=[value, probe(params).trainable_parameters],
            user_attrs={"curve": curve, **attrs},
        )
    )


def ask(study: optuna.Study) -> dict[str, Any]:
    trial = study.ask(SPACE)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return dict(trial.params)


def test_default_sampler_is_the_budgeted_one() -> None:
    assert SamplerConfig().name == "autopeft"
    assert isinstance(make_sampler(SamplerConfig(), 0, probe), BudgetedParetoSampler)


def test_unset_startup_trials_take_each_samplers_own_default() -> None:
    assert SamplerConfig().startup_trials is None
    assert make_sampler(SamplerConfig(), 0, probe).startup_trials == BudgetedParetoSampler.STARTUP_TRIALS == 2
    assert make_sampler(SamplerConfig(startup_trials=5), 0, probe).startup_trials == 5
    assert make_sampler(SamplerConfig(name="tpe"), 0)._n_startup_trials == OPTUNA_STARTUP_TRIALS


def test_candidates_over_the_budget_are_not_proposed_while_feasible_ones_remain() -> None:
    study = new_study(BudgetedParetoSampler(probe, seed=0))
    plans = [
        {"rank.query": q, "rank.value": v, "layers.top": t}
        for q in (0, 4, 16)
        for v in (0, 4, 16)
        for t in (1, 2)
        if q or v
    ]
    feasible = sum(probe(p).feasible for p in plans)
    proposed = []
    for _ in range(feasible):
        trial = study.ask(SPACE)
        proposed.append(dict(trial.params))
        study.tell(trial, [metric(trial.params), probe(trial.params).trainable_parameters])
    assert feasible == 8 and len(plans) == 16
    assert all(probe(p).feasible for p in proposed[1:])  # the first trial is random: no space known yet
    assert len({tuple(sorted(p.items())) for p in proposed}) == len(proposed)


def test_a_trial_whose_intermediate_metric_cannot_reach_the_front_is_stopped() -> None:
    study = new_study(BudgetedParetoSampler(probe, seed=0))
    for params in (
        {"rank.query": 4, "rank.value": 4, "layers.top": 1},
        {"rank.query": 0, "rank.value": 4, "layers.top": 1},
        {"rank.query": 4, "rank.value": 0, "layers.top": 2},
    ):
        add_trial(study, params, metric(params))
    trial = study.ask(
        {
            "rank.query": optuna.distributions.CategoricalDistribution([16]),
            "rank.value": optuna.distributions.CategoricalDistribution([16]),
            "layers.top": optuna.distributions.CategoricalDistribution([2]),
        }
    )
    reporter = OptunaReporter(trial, single_objective=False)
    reporter.report(4, {"task_metric": 0.55})
    assert reporter.should_stop()  # 0.55 + the largest gain seen (0.05) < 0.73 at a lower cost
    reporter.report(8, {"task_metric": 0.99})
    assert not reporter.should_stop()


def test_a_minimised_task_metric_is_searched_as_the_mirror_of_a_maximised_one() -> None:
    """A decoder's reply loss is minimised: the sampler must propose what it proposes for the negated metric
    maximised, and stop the same trial (a sampler that ignored the direction would chase the worst loss)."""
    proposals: dict[str, list[dict[str, Any]]] = {}
    for direction, sign in (("maximize", 1.0), ("minimize", -1.0)):
        study = optuna.create_study(
            directions=[direction, "minimize"], sampler=BudgetedParetoSampler(probe, seed=3)
        )
        study.set_metric_names(["task_metric", "trainable_parameters"])
        proposed = proposals.setdefault(direction, [])
        for _ in range(8):
            trial = study.ask(SPACE)
            proposed.append(dict(trial.params))
            value = sign * metric(trial.params)
            curve = [{"task_metric": value - sign * 0.05}, {"task_metric": value}]
            trial.set_user_attr("curve", curve)
            study.tell(trial, [value, probe(trial.params).trainable_parameters])
        study.enqueue_trial({"rank.query": 16, "rank.value": 16, "layers.top": 2}, skip_if_exists=False)
        reporter = OptunaReporter(study.ask(SPACE), single_objective=False)
        reporter.report(4, {"task_metric": sign * 0.3})  # far worse than every trial seen, either way
        assert reporter.should_stop()
    assert proposals["maximize"] == proposals["minimize"]
    assert len({tuple(sorted(p.items())) for p in proposals["minimize"]}) == 8


def test_method_signals_change_the_proposals_towards_important_modules() -> None:
    def proposals(signals: dict[str, float]) -> list[dict[str, Any]]:
        found = []
        for seed in range(4):
            study = new_study(BudgetedParetoSampler(probe, seed=seed, startup_trials=1))
            add_trial(
                study, {"rank.query": 4, "rank.value": 4, "layers.top": 2}, 0.7, **{SIGNALS_KEY: signals}
            )
            found.append(ask(study))
        return found

    plain = proposals({})
    guided = proposals({"L1.query": 0.0, "L0.query": 0.0, "L1.value": 1.0, "L0.value": 1.0})
    assert plain != guided
    assert all(p["rank.value"] > 0 for p in guided)


def test_method_signals_are_percentile_ranks_keyed_by_block_and_module() -> None:
    reports = {
        "ist": {"blocks": [0, 1], "importance": [0.2, -0.1]},
        "light_peft": {
            "module_importance": {
                "bert.encoder.layer.0.attention.self.query": 3.0,
                "bert.encoder.layer.1.attention.self.query": 1.0,
            }
        },
    }
    assert method_signals(reports) == {"L0": 1.0, "L1": 0.0, "L0.query": 1.0, "L1.query": 0.0}


@pytest.mark.timeout(120)
def test_a_cli_search_with_the_default_sampler_prunes_and_keeps_pruned_trials_off_the_front(
    tmp_path: Path, tiny_bert_dir: Path
) -> None:
    space = write_space(
        tmp_path, tiny_bert_dir, trials=3, sampler="sampler: {name: autopeft, startup_trials: 2}"
    )
    run = tmp_path / "run"
    assert main(["search", str(space), "--out", str(run), "--quiet"]) == 0
    study = optuna.load_study(study_name="space", storage=RunDirectory(run).storage("journal"))
    cheapest = min(study.trials, key=lambda t: t.user_attrs["trainable_parameters"])
    for params in (
        {"layer.0": True, "layer.1": False, "rank.query": 2, "rank.value": 0},
        {"layer.0": False, "layer.1": True, "rank.query": 0, "rank.value": 2},
        {"layer.0": True, "layer.1": True, "rank.query": 2, "rank.value": 2},
    ):
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=cheapest.distributions,
                values=[1.0, 1.0],
                user_attrs={"curve": [{"task_metric": 0.99}, {"task_metric": 1.0}]},
            )
        )
    assert main(["search", str(space), "--out", str(run), "--trials", "7", "--quiet"]) == 0
    study = optuna.load_study(study_name="space", storage=RunDirectory(run).storage("journal"))
    added = study.trials[6:]
    assert [t.state for t in added] == [optuna.trial.TrialState.PRUNED]
    rows = trial_rows(study, ["task_metric", "trainable_parameters"], ["maximize", "minimize"])
    assert not any(row.on_front for row in rows if row.state == "pruned")
    proposed = [t for t in study.trials if t.number < 3 or t.number >= 6]
    assert len({tuple(sorted(t.params.items())) for t in proposed}) == len(proposed)


def test_a_light_peft_candidate_is_costed_at_the_share_its_ratios_keep(
    tmp_path: Path, tiny_bert: Any
) -> None:
    space = SearchSpace.load(
        write_space(
            tmp_path,
            "tiny",
            methods="methods:\n  light_peft: {enabled: [false, true], module_ratio: 0.5, rank_ratio: 0.25}",
        )
    )
    probe = PlanProbe(space, ModelLayout.from_model(tiny_bert, "tiny"))
    params = {"layer.0": True, "layer.1": True, "rank.query": 4, "rank.value": 4}
    plain = probe({**params, "light_peft.enabled": False})
    pruned = probe({**params, "light_peft.enabled": True})
    assert pruned.trainable_parameters == plain.trainable_parameters == plain.expected
    assert pruned.expected == pytest.approx(0.5 * 0.75 * plain.trainable_parameters)


def test_a_sampler_with_the_plan_probe_of_a_real_space_survives_pickling(
    tmp_path: Path, tiny_bert: Any
) -> None:
    """Ray Tune pickles the searcher, with its sampler and the sampler's probe, at every checkpoint."""
    constraints = "constraints: {max_trainable_parameters: 500}"
    space = SearchSpace.load(write_space(tmp_path, "tiny", constraints=constraints))
    probe = PlanProbe(space, ModelLayout.from_model(tiny_bert, "tiny"))
    sampler = BudgetedParetoSampler(probe, seed=0)
    small = {"layer.0": True, "layer.1": False, "rank.query": 4, "rank.value": 2}
    large = {"layer.0": True, "layer.1": True, "rank.query": 4, "rank.value": 4}
    facts = [sampler.facts(small), probe(large)]
    restored = pickle.loads(pickle.dumps(sampler)).probe
    assert isinstance(restored, PlanProbe) and [restored(small), restored(large)] == facts
    assert [f.feasible for f in facts] == [True, False] and facts[0].modules == {"L0.query", "L0.value"}
