"""Shared pieces of the benchmark scripts: where they write their records, and (from
:mod:`bayesdrop.experiments.report_io`) the machine description and writing a results file."""

from __future__ import annotations

from pathlib import Path

from bayesdrop.experiments.report_io import device_name, write_results

__all__ = ["RESULTS", "device_name", "write_results"]

RESULTS = Path(__file__).resolve().parent / "results"
