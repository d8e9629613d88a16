"""Shared pieces of the benchmark scripts: the machine description and writing a results file."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU with its thread count and architecture; with the torch version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    return f"{name}; torch {torch.__version__}"


def write_results(text: str, out: str | Path) -> None:
    """Write ``text`` (ending in a newline) to ``out``, creating its folder, and print it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = text if text.endswith("\n") else text + "\n"
    out.write_text(text)
    print(text, end="")
