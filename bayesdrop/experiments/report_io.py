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
import concurrent.futures as cf
import os
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "device_name",
    "write_results",
    "script_parser",
    "dataset_arguments",
    "chosen_epochs",
    "merge_sections",
    "quoted_command",
    "run_jobs",
]


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


def quoted_command(script: str, argv: Sequence[str]) -> str:
    """The command line a record quotes: ``OMP_NUM_THREADS`` when set, ``python <script>`` and ``argv`` without
    ``--out`` and its value (the record is where it was written)."""
    threads = os.environ.get("OMP_NUM_THREADS")
    quoted = [a for i, a in enumerate(argv) if not (a.startswith("--out") or i and argv[i - 1] == "--out")]
    return " ".join([*([f"OMP_NUM_THREADS={threads}"] if threads else []), f"python {script}", *quoted])


def _one_thread(job: tuple[Callable[..., dict[str, Any]], tuple[Any, ...], dict[str, Any]]) -> dict[str, Any]:
    """Run one job in a worker process with one torch thread (the workers share the machine)."""
    import torch

    torch.set_num_threads(1)
    fn, args, kwargs = job
    return fn(*args, **kwargs)


def run_jobs(
    fn: Callable[..., dict[str, Any]],
    jobs_args: Sequence[tuple[Any, ...]],
    kwargs: dict[str, Any],
    *,
    jobs: int = 1,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``fn(*args, **kwargs)`` for every ``args`` of ``jobs_args``, ``jobs`` at a time in worker processes of one
    thread each (``jobs=1``: in this process, in order); ``fn`` must be a module-level function (the workers import
    it).  ``progress(done, total, row)`` is called as each run finishes.

    Returns
    -------
    list of dict
        The rows, in the order of ``jobs_args``.
    """
    rows: list[dict[str, Any] | None] = [None] * len(jobs_args)
    if jobs == 1:
        for i, args in enumerate(jobs_args):
            rows[i] = row = fn(*args, **kwargs)
            if progress is not None:
                progress(i + 1, len(rows), row)
    else:
        with cf.ProcessPoolExecutor(jobs) as ex:
            futures = {ex.submit(_one_thread, (fn, args, kwargs)): i for i, args in enumerate(jobs_args)}
            for done, fut in enumerate(cf.as_completed(futures), 1):
                rows[futures[fut]] = row = fut.result()
                if progress is not None:
                    progress(done, len(rows), row)
    return [row for row in rows if row is not None]
