"""autopeft: multi-objective search over PEFT configurations, spectral audits, and Pareto dashboards."""

from __future__ import annotations

__version__ = "0.1.0"
