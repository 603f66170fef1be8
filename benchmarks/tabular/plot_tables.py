"""Plot the replay's mean hypervolume curves of one or several tables side by side, from their result JSONs.

Each table gets its own panel (hypervolumes of different tables are on different scales: another task, another
metric reference), and a strategy keeps its colour and line style in every panel, so the figure shows at a glance whether the
strategies rank the same way on each table. `benchmarks/search_quality.py` draws its own table with this
(`--plot-with` adds others); to draw tables already replayed:

    python benchmarks/tabular/plot_tables.py benchmarks/tabular/search_quality.json \\
        benchmarks/tabular/search_quality_cola.json --out /tmp/tables.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Results = dict[str, Any]


def table_title(results: Results) -> str:
    """The panel title: the space file, the task and the metric reference (0.5 for a result JSON written
    before the reference was stated, when it was always 0.5)."""
    space = results.get("space_file", "space.yaml")
    task = results.get("task", "sst2")
    return f"{space} ({task}, metric reference {results.get('metric_reference', 0.5)})"


def plot_tables(tables: Sequence[Results], path: Path) -> Path:
    """One panel per table of mean hypervolume against trials, one line per strategy: a PNG with matplotlib
    when `path` ends in .png and matplotlib is installed, else plotly HTML beside it. Returns the file
    written."""
    if path.suffix == ".png":
        try:
            return _plot_png(tables, path)
        except ImportError:
            path = path.with_suffix(".html")
    return _plot_html(tables, path)


def _strategy_names(tables: Sequence[Results]) -> list[str]:
    """Every strategy of any table, in the order first seen (one colour each)."""
    return list(dict.fromkeys(name for results in tables for name in results["strategies"]))


def _plot_png(tables: Sequence[Results], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _strategy_names(tables)
    colours = {name: plt.get_cmap("tab10")(index % 10) for index, name in enumerate(names)}
    styles = {name: ("-", "--", "-.")[index // 10 % 3] for index, name in enumerate(names)}
    figure, panels = plt.subplots(1, len(tables), figsize=(7 * len(tables), 4.5), squeeze=False)
    for axes, results in zip(panels[0], tables, strict=True):
        for name, data in results["strategies"].items():
            curve = data["curve_mean"]
            axes.plot(
                range(1, len(curve) + 1), curve, label=name, color=colours[name], linestyle=styles[name]
            )
        axes.axhline(results["best_hypervolume"], color="grey", linestyle=":", label="whole table")
        axes.set_title(table_title(results), fontsize=9)
        axes.set_xlabel("trials (full-trial equivalents)")
        axes.set_ylabel("hypervolume (normalised, mean over seeds)")
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _plot_html(tables: Sequence[Results], path: Path) -> Path:
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    names = _strategy_names(tables)
    palette = qualitative.Dark24
    figure = make_subplots(rows=1, cols=len(tables), subplot_titles=[table_title(r) for r in tables])
    for column, results in enumerate(tables, start=1):
        for name, data in results["strategies"].items():
            curve = data["curve_mean"]
            colour = palette[names.index(name) % len(palette)]
            trace = go.Scatter(
                x=list(range(1, len(curve) + 1)),
                y=curve,
                name=name,
                legendgroup=name,
                showlegend=column == 1,
                line={"color": colour},
            )
            figure.add_trace(trace, row=1, col=column)
        figure.add_hline(y=results["best_hypervolume"], line_dash="dot", row=1, col=column)
    figure.update_xaxes(title_text="trials (full-trial equivalents)")
    figure.update_yaxes(title_text="hypervolume (mean over seeds)")
    figure.write_html(path, include_plotlyjs=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="Result JSONs of search_quality.py.")
    parser.add_argument("--out", type=Path, required=True, help="The figure (.png, or .html for plotly).")
    args = parser.parse_args()
    tables = [json.loads(path.read_text(encoding="utf-8")) for path in args.results]
    print(plot_tables(tables, args.out))


if __name__ == "__main__":
    main()
