"""The compute half of compute-then-draw, on known answers and on the real study."""

from __future__ import annotations

import itertools
import json

import optuna
import pytest

from autopeft.dashboards.hypervolume_plot import hypervolume_info
from autopeft.dashboards.pareto_plot import ParetoInfo, ParetoPoint, pareto_figure, pareto_info
from autopeft.dashboards.plan_heatmap import plan_heatmap_figure, plan_heatmap_info
from autopeft.dashboards.run_source import RunSource
from autopeft.dashboards.trial_details import trial_details
from autopeft.errors import ConfigError
from autopeft.objectives import Direction
from autopeft.pareto.hypervolume import hypervolume
from autopeft.storage.run_directory import RunDirectory


def test_hypervolume_of_two_points_in_2d_is_the_union_of_their_boxes() -> None:
    assert hypervolume([(1.0, 3.0), (2.0, 1.0)], (4.0, 4.0)) == pytest.approx(
        3 * 1 + 2 * 3 - 2 * 1
    )  # two boxes minus their overlap


def test_hypervolume_in_3d_matches_inclusion_exclusion() -> None:
    points = [(1.0, 2.0, 2.0), (2.0, 1.0, 2.0)]
    boxes, overlap = 2 * 1 * 1 + 1 * 2 * 1, 1 * 1 * 1  # boxes from each point to (3, 3, 3), and their overlap
    assert hypervolume(points, (3.0, 3.0, 3.0)) == pytest.approx(boxes - overlap)


def test_hypervolume_never_falls_over_trials(run_dir: RunDirectory) -> None:
    source = RunSource.open(run_dir.root)
    study = source.study("space")
    objectives = source.objectives(study)
    values = hypervolume_info(source.rows(study), objectives.names, objectives.directions).values
    assert values and all(b >= a for a, b in itertools.pairwise(values))


def test_pareto_figure_marks_front_dominated_and_violators(run_dir: RunDirectory) -> None:
    source = RunSource.open(run_dir.root)
    study = source.study("space")
    objectives = source.objectives(study)
    rows = source.rows(study)
    info = pareto_info(rows, objectives.names, objectives.directions, "task_metric", "trainable_parameters")
    figure = pareto_figure(info)
    markers = [t for t in figure.data if t.mode == "markers"]
    assert sum(len(t.x) for t in markers) == sum(1 for r in rows if r.values)
    infeasible = sorted(r.number for r in rows if r.values and not r.feasible)
    assert sorted(markers[2].customdata) == infeasible and markers[2].marker.symbol == "x"


@pytest.mark.parametrize("x_direction", ["maximize", "minimize"])
@pytest.mark.parametrize("y_direction", ["maximize", "minimize"])
def test_front_is_drawn_as_the_edge_of_the_region_it_dominates(
    x_direction: Direction, y_direction: Direction
) -> None:
    sign = {"maximize": 1.0, "minimize": -1.0}
    sx, sy = sign[x_direction], sign[y_direction]

    def point(number: int, better_x: float, better_y: float, on_front: bool) -> ParetoPoint:
        return ParetoPoint(number, sx * better_x, sy * better_y, on_front, True, "")

    front = [point(0, 1, 3, True), point(1, 2, 2, True), point(2, 3, 1, True)]
    projected_inside = point(3, 1.5, 1.5, True)  # on the front of all objectives, dominated in this plane
    dominated = point(4, 0.5, 0.5, False)
    info = ParetoInfo("x", "y", x_direction, y_direction, (*front, projected_inside, dominated), 3)
    line = next(t for t in pareto_figure(info).data if t.mode == "lines")
    corners = list(zip(line.x, line.y, strict=True))  # in the order plotly joins them
    assert corners == sorted((p.x, p.y) for p in front)
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        # the bend between two corners is the worse x and the worse y of the two: the region's edge
        worse_x, worse_y = min((x0, x1), key=lambda v: sx * v), min((y0, y1), key=lambda v: sy * v)
        bend = {"hv": (x1, y0), "vh": (x0, y1)}.get(line.line.shape)
        assert bend == (worse_x, worse_y), (line.line.shape, (x0, y0), (x1, y1))


def test_unknown_objective_is_a_config_error(run_dir: RunDirectory) -> None:
    source = RunSource.open(run_dir.root)
    study = source.study("space")
    with pytest.raises(ConfigError, match="objective 'loss' is not in this study"):
        pareto_info(source.rows(study), ("task_metric",), ("maximize",), "task_metric", "loss")


def test_module_missing_from_the_saved_adapter_shows_as_pruned(run_dir: RunDirectory) -> None:
    source = RunSource.open(run_dir.root)
    study = source.study("space")
    number = next(t.number for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE)
    details = trial_details(source, study, number)
    assert details.plan is not None and details.adapter_config is not None
    dropped = details.adapter_config["target_modules"][0]
    config = {**details.adapter_config, "target_modules": details.adapter_config["target_modules"][1:]}
    pruned = plan_heatmap_info(details.plan, config, "pruned copy")
    intact = plan_heatmap_info(details.plan, details.adapter_config, "as saved")
    assert intact.count("pruned") == 0 and pruned.count("pruned") == 1
    assert "1 pruned" in plan_heatmap_figure(pruned).layout.title.text, dropped


def test_unknown_trial_is_a_config_error_naming_the_range(run_dir: RunDirectory) -> None:
    source = RunSource.open(run_dir.root)
    study = source.study("space")
    count = len(study.get_trials())
    with pytest.raises(ConfigError, match=rf"study 'space' has no trial 99; trials: 0..{count - 1}"):
        trial_details(source, study, 99)


def test_unknown_study_is_a_config_error_listing_the_studies(run_dir: RunDirectory) -> None:
    with pytest.raises(ConfigError, match="storage holds no study named 'other'; studies: space"):
        RunSource.open(run_dir.root).study("other")


def test_plan_json_wins_over_the_user_attribute(run_dir: RunDirectory) -> None:
    source = RunSource.open(run_dir.root)
    study = source.study("space")
    details = trial_details(source, study, 0)
    stored = json.loads((run_dir.trial_dir(0) / "plan.json").read_text())
    assert details.plan == stored
