"""The machine description and the writing of a results file, shared by the benchmark protocols.

For the modules of :mod:`bayesdrop.experiments` that write a Markdown record (and the scripts in ``benchmarks/``
that run them): each record names the device it ran on, with the torch version, and is printed as it is written.

Example
-------
>>> import torch
>>> from bayesdrop.experiments.report_io import device_name, write_results
>>> device_name(torch.device("cpu"))  # doctest: +SKIP
'CPU (2 threads, x86_64); torch 2.13.0'
>>> write_results("# Results", "/tmp/results.md")  # doctest: +SKIP
# Results
"""

from __future__ import annotations

import argparse
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

__all__ = ["device_name", "write_results", "script_parser", "dataset_arguments", "chosen_epochs", "merge_sections"]


def device_name(device: torch.device) -> str:
    """Describe the machine a benchmark ran on.

    Parameters
    ----------
    device
        The device of the run.

    Returns
    -------
    str
        The GPU's name, or the CPU with its thread count and architecture; then the torch version.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    return f"{name}; torch {torch.__version__}"


def write_results(text: str, out: str | Path) -> None:
    """Write ``text`` (ending in a newline) to ``out``, creating its folder, and print it.

    Parameters
    ----------
    text
        The record; a final newline is added when missing.
    out
        The file to write.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = text if text.endswith("\n") else text + "\n"
    out.write_text(text)
    print(text, end="")


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark script, described by its protocol module's docstring ``doc`` up to the
    docstring's ``Example`` section.

    A protocol's ``main(argv=None, *, default_out=...)`` parses ``argv`` (``sys.argv[1:]`` when ``None``) with it and
    writes its record to ``--out``, or to ``default_out`` when ``--out`` is not given.
    """
    return argparse.ArgumentParser(
        description=(doc or "").split("\nExample\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )


def dataset_arguments(ap: argparse.ArgumentParser, datasets: Sequence[str], epochs_help: str) -> None:
    """Add ``--dataset`` (one of ``datasets``, the first by default), ``--mnist-dir`` (the IDX files of
    ``--dataset mnist``) and ``--epochs`` (default ``None``: the data set's own, which ``epochs_help`` states) to
    ``ap``; :func:`chosen_epochs` reads them back."""
    ap.add_argument("--dataset", default=datasets[0], choices=list(datasets))
    ap.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files (for --dataset mnist)")
    ap.add_argument("--epochs", type=int, default=None, help=epochs_help)


def chosen_epochs(ap: argparse.ArgumentParser, args: argparse.Namespace, epochs: Mapping[str, int]) -> int:
    """The epochs of a run parsed with :func:`dataset_arguments`: ``--epochs``, else ``epochs[--dataset]``; exits
    with a usage error if ``--dataset mnist`` comes without ``--mnist-dir``."""
    if args.dataset == "mnist" and not args.mnist_dir:
        ap.error("--dataset mnist needs --mnist-dir (a directory with the four IDX files)")
    return epochs[args.dataset] if args.epochs is None else args.epochs


def _section_key(section: str) -> str:
    """The key of a section: the word after ``## `` in its heading, up to the colon."""
    return section.split(":", 1)[0].removeprefix("## ").strip()


def merge_sections(record: str | None, section: str, *, title: str, order: Sequence[str]) -> str:
    """A record of sections (``title``, then one ``## key: ...`` section per key, in the order of ``order``, unknown
    keys last) with ``section`` in place of the section of its key in ``record``, or added to it; the other
    sections are kept as they are.  ``record`` ``None``: the title and ``section``."""
    sections = {_section_key(part): part for part in re.split(r"(?m)^(?=## )", record or "")[1:]}
    sections[_section_key(section)] = section
    keys = sorted(sections, key=lambda k: order.index(k) if k in order else len(order))
    head = "\n".join([title, "", "One section per data set, each written by its own run of the command it quotes."])
    return "\n\n".join([head, *(sections[k].strip("\n") for k in keys)]) + "\n"
