"""Hostile and unlucky inputs: each gets a clear error naming the argument or the file, before any work it would
spoil, or is handled correctly.  One test per finding (decompression bombs, another model's guide, non-finite
pruning thresholds, impossible probabilities)."""

from __future__ import annotations

import gzip
import math
import re
import time
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayesdrop as bd
from bayesdrop.diagnostics import expected_calibration_error


def _idx_header(magic: int, dims: tuple[int, ...]) -> bytes:
    return np.array([magic, *dims], dtype=">i4").tobytes()


def _bomb(path, header: bytes, inflated_mib: int = 3072) -> None:
    """A gzip file of about 3 MB that inflates to ``inflated_mib`` MiB of zeros after ``header``: gzip members of
    64 MiB of zeros, compressed once and concatenated (a valid multi-member stream)."""
    member = gzip.compress(bytes(64 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header))
        for _ in range(inflated_mib // 64):
            f.write(member)


def _mnist_dir(root, images: bytes, *, n: int = 4, side: int = 28) -> None:
    """The four MNIST files, the training images replaced by ``images`` (gzip)."""
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        labels = _idx_header(2049, (n,)) + rng.integers(0, 10, n, dtype=np.uint8).tobytes()
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    pixels = _idx_header(2051, (n, side, side)) + rng.integers(0, 256, (n, side, side), dtype=np.uint8).tobytes()
    (root / "t10k-images-idx3-ubyte").write_bytes(pixels)
    (root / "train-images-idx3-ubyte.gz").write_bytes(images)


def test_a_gzip_bomb_is_refused_quickly_and_in_little_memory(tmp_path):
    """3 MB inflating to 3 GiB behind an MNIST-sized header (60000 x 28 x 28): the reader stops one byte after the
    47 MB the header declares, in under a second and 100 MB."""
    bomb = tmp_path / "bomb.gz"
    _bomb(bomb, _idx_header(2051, (60000, 28, 28)))
    assert bomb.stat().st_size < 4 << 20
    _mnist_dir(tmp_path, bomb.read_bytes())
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: .* need 47040000 data bytes, found more"):
        bd.data.load_mnist(tmp_path)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 100 << 20, (seconds, peak)


def test_a_header_declaring_gigabytes_is_refused_before_reading(tmp_path):
    """A consistent header asking for 7.6 GB (a 1.5 MB file would inflate to it) is refused from the header."""
    images = gzip.compress(_idx_header(2051, (9_700_000, 28, 28)) + bytes(1 << 20))
    _mnist_dir(tmp_path, images)
    with pytest.raises(ValueError, match="MAX_IDX_BYTES"):
        bd.data.load_mnist(tmp_path)


def _regressor(seed=0):
    torch.manual_seed(seed)
    model = bd.Regressor(bd.models.mlp(2, [8], 1), num_data=20)
    return model, bd.DropoutGuide(model)


def test_predicting_with_another_models_guide_is_refused():
    x, y = torch.randn(20, 2), torch.randn(20)
    model, guide = _regressor()
    bd.fit(model, guide, (x, y), epochs=1, progress=False)
    _, other = _regressor(1)
    for call in (lambda: bd.predict(model, other, x), lambda: bd.evaluate(model, other, (x, y))):
        with pytest.raises(ValueError, match="`guide` must be the DropoutGuide built for `model`"):
            call()


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pruning_thresholds_are_refused(threshold):
    model, guide = _regressor()
    guide(torch.randn(4, 2))
    for call in (
        lambda: bd.compress.prune(model, guide, threshold=threshold),
        lambda: bd.compress.report(model, guide, threshold=threshold),
        lambda: guide.mean_network(pruned=True, threshold=threshold),
    ):
        with pytest.raises(ValueError, match="`threshold` must be a finite number"):
            call()
    with pytest.raises(TypeError, match="`threshold`"):
        bd.compress.report(model, guide, threshold=[3.0])


def test_calibration_refuses_what_is_not_a_probability():
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="`probs` must hold class probabilities"):
        expected_calibration_error(torch.full((4, 3), 5.0), y)
    with pytest.raises(ValueError, match="`probs` must hold class probabilities"):
        expected_calibration_error(torch.full((4, 3), 0.2), y)  # rows sum to 0.6
    with pytest.raises(ValueError, match=r"`y` must be integer labels in \[0, 2\]"):
        expected_calibration_error(torch.full((4, 3), 1 / 3), torch.tensor([0, 1, 3, 0]))
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]])
    # 15 bins; conf 0.9 correct, 0.7 correct, 0.4 correct, 0.6 correct: ECE = mean of 1 - conf
    assert expected_calibration_error(probs, y) == pytest.approx((0.1 + 0.3 + 0.6 + 0.4) / 4)


def test_bad_run_arguments_fail_before_any_training(tmp_path, monkeypatch):
    """``train --num-samples 0``, ``compare --out <a file>`` and ``fit(checkpoint=<a missing directory>)`` used to
    fail after all the training had run; now they fail first (``bd.fit`` is never called)."""
    from bayesdrop import cli

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(cli, "fit", no_training, raising=False)
    monkeypatch.setattr(bd.experiments.compare, "compare", no_training)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert cli.main(["train", "--num-samples", "0", "--out", str(tmp_path / "r")]) == 2
    assert cli.main(["train", "--epochs", "0", "--out", str(tmp_path / "r")]) == 2
    assert cli.main(["train", "--out", str(a_file)]) == 2
    assert cli.main(["compare", "--methods", "bernoulli", "--out", str(a_file)]) == 2
    x, y = torch.randn(8, 2), torch.randn(8)
    model, guide = _regressor()
    for bad in (tmp_path / "missing" / "ckpt.pt", tmp_path):
        with pytest.raises(ValueError, match="`checkpoint` must be a file path in an existing directory"):
            bd.fit(model, guide, (x, y), epochs=1, checkpoint=bad, progress=False)


def _classifier():
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
    return model, bd.DropoutGuide(model)


def _xy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)


def test_data_of_the_wrong_dtype_or_form_is_refused_or_converted_at_the_boundary():
    """float64 inputs for a float32 model: a TypeError with the cast to make; int32 labels: converted; a loader's
    out-of-range labels: the likelihood's ValueError naming `data.y` before any step; dict batches with keys x and y:
    accepted; other batch forms: a TypeError naming the accepted ones; an empty loader: a ValueError."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = _xy()
    model, guide = _classifier()
    with pytest.raises(TypeError, match=r"x is float64 but the model's parameters are float32: pass x.to\(torch"):
        bd.fit(model, guide, (x.double(), y), epochs=1, progress=False)
    bd.fit(model, guide, (x, y.int()), epochs=1, progress=False)  # int32 labels
    assert bd.evaluate(model, guide, (x, y.to(torch.int16)))["acc"] == bd.evaluate(model, guide, (x, y))["acc"]
    with pytest.raises(ValueError, match=r"`data.y`.*labels"):
        bd.fit(model, guide, DataLoader(TensorDataset(x, y + 5), batch_size=8), epochs=1, progress=False)
    dicts = [{"x": x[i], "y": y[i]} for i in range(40)]
    bd.fit(model, guide, DataLoader(dicts, batch_size=8), epochs=1, progress=False)
    triples = TensorDataset(x, y, y)
    with pytest.raises(TypeError, match="must yield \\(x, y\\) pairs or dicts with keys 'x' and 'y'"):
        bd.fit(model, guide, DataLoader(triples, batch_size=8), epochs=1, progress=False)
    with pytest.raises(ValueError, match="no examples"):
        bd.fit(model, guide, DataLoader(TensorDataset(x[:0], y[:0]), batch_size=8), epochs=1, progress=False)


def test_a_stream_without_length_trains_on_the_stated_num_data():
    from torch.utils.data import DataLoader, IterableDataset

    x, y = _xy()

    class Stream(IterableDataset):
        def __iter__(self):
            yield from zip(x, y)

    model, guide = _classifier()
    result = bd.fit(model, guide, DataLoader(Stream(), batch_size=8), epochs=2, progress=False)
    assert len(result.history["elbo"]) == 2 and all(np.isfinite(result.history["elbo"]))


def _run_dir(tmp_path, **change):
    """A run directory from a one-epoch `bayesdrop train`, its config.json then edited by ``change``."""
    import json

    from bayesdrop import cli

    out = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--arch", "mlp:8", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    config.update(change)
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.mark.parametrize(
    "change, match",
    [
        ({"arch": "mlp:100000,100000"}, "widths at most"),
        ({"arch": ["mlp"]}, "'arch' must be str"),
        ({"epochs": True}, "'epochs' must be int"),
        ({"hyper": {"p": {"nested": 1}}}, r"hyper\['p'\]"),
        ({"method": None}, "'method' must be str"),
    ],
)
def test_a_hostile_run_configuration_is_refused_with_its_file_and_key(tmp_path, capsys, change, match):
    from bayesdrop import cli

    out = _run_dir(tmp_path, **change)
    assert cli.main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err or "--arch" in err
    assert re.search(match, err), err


def test_a_deeply_nested_configuration_is_refused_not_a_recursion_error(tmp_path, capsys):
    from bayesdrop import cli

    out = _run_dir(tmp_path)
    (out / "config.json").write_text("[" * 100000 + "]" * 100000)
    assert cli.main(["report", str(out)]) == 2
    assert "not a bayesdrop run configuration (RecursionError" in capsys.readouterr().err


def test_the_command_line_answers_interrupts_and_file_errors_in_one_line(tmp_path, capsys, monkeypatch):
    from bayesdrop import cli

    def interrupted(args):
        raise KeyboardInterrupt

    def exists(args):
        raise FileExistsError(17, "File exists", "runs/x")

    for fn, code, text in ((interrupted, 130, "interrupted"), (exists, 2, "File exists")):
        parser = cli.make_parser()
        args = parser.parse_args(["methods"])
        args.func = fn
        monkeypatch.setattr(parser, "parse_args", lambda argv=None, a=args: a)
        monkeypatch.setattr(cli, "make_parser", lambda p=parser: p)
        assert cli.main(["methods"]) == code
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: a file appears if anything unpickles it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _edited_pt2(src, dst, edit):
    """The zip ``src`` rewritten into ``dst``: ``edit(entries)`` maps its list of (name, bytes) to the new list."""
    import zipfile

    with zipfile.ZipFile(src) as zin:
        entries = [(n, zin.read(n)) for n in zin.namelist()]
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in edit(entries):
            zout.writestr(name, data)


def _rewrite(src, dst, change):
    """Copy the zip ``src`` to ``dst`` with ``change(name, data) -> data`` applied to every entry."""
    _edited_pt2(src, dst, lambda entries: [(name, change(name, data)) for name, data in entries])


def _saved(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    test_rows = torch.randn(360, 4)
    path = tmp_path / "pruned.pt2"
    bd.compress.save(module, path, test_rows)
    return module, test_rows, path


def test_a_saved_model_holds_no_test_rows_and_loads(tmp_path):
    import zipfile

    module, test_rows, path = _saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
        (inputs,) = [n for n in z.namelist() if "sample_inputs" in n]
        sample = torch.load(__import__("io").BytesIO(z.read(inputs)), weights_only=True)
    assert test_rows[0].numpy().tobytes() not in blob  # not one row of the data it was given
    assert torch.equal(sample[0][0], torch.zeros(2, 4))
    loaded = bd.compress.load(path)
    torch.testing.assert_close(loaded(test_rows), module(test_rows))


def _flip_a_bit_of(path, member_part):
    """Flip one bit inside the stored bytes of the first zip member whose name holds ``member_part``."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        member = next(i for i in archive.infolist() if member_part in i.filename and i.file_size >= 4)
    blob = bytearray(path.read_bytes())
    at = member.header_offset  # the local header: its name and extra field (torch's alignment padding) lengths
    name, extra = (int.from_bytes(blob[at + k : at + k + 2], "little") for k in (26, 28))
    blob[at + 30 + name + extra + 1] ^= 0x01
    path.write_bytes(bytes(blob))


def test_a_pt2_with_a_flipped_bit_or_a_directory_is_refused(tmp_path):
    """torch.export.load does not check the CRC-32s either: a flipped bit in a weight is refused by check_pt2."""
    module, test_rows, path = _saved(tmp_path)
    _flip_a_bit_of(path, "data/weights/")
    with pytest.raises(ValueError, match=r"the file is corrupt: the bytes of its entry .*data/weights/"):
        bd.compress.load(path)
    with pytest.raises(IsADirectoryError, match="is a directory, not a .pt2 file"):
        bd.compress.load(tmp_path)


@pytest.mark.parametrize("where", ["weight", "sample_inputs"])
def test_a_pt2_with_a_pickle_payload_is_refused_and_the_payload_never_runs(tmp_path, where):
    """A weight marked ``use_pickle`` whose bytes are a pickle, or sample inputs that are a bare pickle (which
    torch.export would load with weights_only=False): refused by check_pt2, the marker file never created."""
    import io
    import json
    import pickle

    _, _, path = _saved(tmp_path)
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt2"

    def change(name, data):
        if where == "weight" and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"]))
            config["config"][first]["use_pickle"] = True
            return json.dumps(config).encode()
        if where == "weight" and name.endswith("weights/weight_0"):
            buf = io.BytesIO()
            torch.save(_Payload(marker), buf)
            return buf.getvalue()
        if where == "sample_inputs" and "sample_inputs" in name:
            return pickle.dumps(_Payload(marker))
        return data

    _rewrite(path, evil, change)
    with pytest.raises(ValueError, match="refused"):
        bd.compress.load(evil)
    assert not marker.exists()
    not_a_zip = tmp_path / "a_file"
    not_a_zip.write_text("x")
    with pytest.raises(ValueError, match="not a .pt2 archive"):
        bd.compress.check_pt2(not_a_zip)


@pytest.mark.parametrize(
    "kind,program,listed",
    [("weights", "weight_evil", False), ("constants", "tensor_constant_evil", False), ("weights", "weight_evil", True)],
    ids=["legacy-weights", "legacy-constants", "legacy-weights-named-in-config"],
)
def test_a_pt2_with_a_legacy_pickled_payload_is_refused_and_never_runs(tmp_path, kind, program, listed):
    """torch.export.load reads a legacy ``data/weights/<program>.pt`` (or ``data/constants/...``) file with
    torch.load and falls back to unpickling it.  A program renamed so that the file's name carries the payload
    prefix (``weight_``, ``tensor_constant``), and even a configuration that names it, is refused before torch
    opens anything."""
    import io
    import json

    _, _, path = _saved(tmp_path)
    marker = tmp_path / "payload_ran"
    buf = io.BytesIO()
    torch.save({"x": _Payload(marker)}, buf)

    def edit(entries):
        root = entries[0][0].split("/")[0]
        out = []
        for name, data in entries:
            if kind == "weights" and "/data/weights/" in name and not (listed and name.endswith("config.json")):
                continue
            name = name.replace("/model.", f"/{program}.").replace("/model_", f"/{program}_")
            if listed and name.endswith(f"{program}_weights_config.json"):
                data = json.dumps({"config": {"w": {"path_name": f"{program}.pt", "use_pickle": False}}}).encode()
            out.append((name, data))
        return out + [(f"{root}/data/{kind}/{program}.pt", buf.getvalue())]

    evil = tmp_path / "evil.pt2"
    _edited_pt2(path, evil, edit)
    with pytest.raises(ValueError, match=f"unexpected entry 'data/{kind}/{program}.pt'.*refused"):
        bd.compress.load(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda es: es + [(es[0][0].split("/")[0] + "/extra/run.py", b"print(1)")], "unexpected entry 'extra/run.py'"),
        (lambda es: [(n, b"zip" if n.endswith("/archive_format") else d) for n, d in es], "archive_format is not"),
        (lambda es: es + [("other/archive_format", b"pt2")], "no single root folder"),
        (lambda es: [(n, d) for n, d in es if "/data/weights/weight_" not in n], "is not a loadable .pt2 model"),
    ],
    ids=["extra-entry", "format", "two-roots", "weights-missing"],
)
def test_load_refuses_an_archive_that_is_not_the_program_save_wrote(tmp_path, edit, message):
    """Anything but save's entries is refused before torch.export reads the file; an archive whose entries pass
    the check but do not make a program is a ValueError naming the file, not torch's exception."""
    _, _, path = _saved(tmp_path)
    edited = tmp_path / "edited.pt2"
    _edited_pt2(path, edited, edit)
    with pytest.raises(ValueError, match=message):
        bd.compress.load(edited)


def test_load_and_save_name_a_missing_file_and_a_bad_example(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bd.compress.load(tmp_path / "none.pt2")
    with pytest.raises(ValueError, match="`example` must be a tensor of inputs"):
        bd.compress.save(torch.nn.Linear(4, 2), tmp_path / "m.pt2", torch.zeros(0, 4))
    # the export's tracing checks neither an index nor a dtype: a program for the wrong input would be saved
    selecting = torch.nn.Sequential(bd.compress.InputSelect(torch.tensor([0, 7]), dim=-1), torch.nn.Linear(2, 1))
    for wrong, what in (
        (torch.zeros(1, 4), r"\(shape \(1, 4\)"),
        (torch.zeros(1, 8, dtype=torch.long), r"\(shape.*int64"),
    ):
        with pytest.raises(ValueError, match=f"`module` cannot run on inputs like `example` {what}"):
            bd.compress.save(selecting, tmp_path / "wrong.pt2", wrong)
    assert not (tmp_path / "wrong.pt2").exists()
    sparse = torch.nn.Sequential(bd.compress.SparseLinear(torch.eye(3), torch.zeros(3)))
    with pytest.raises(ValueError, match=r"SparseLinear layers \(0\), whose sparse matrix products"):
        bd.compress.save(sparse, tmp_path / "sparse.pt2", torch.zeros(1, 3))


# ----------------------------------------------------------------------------- interrupted runs and resume


class _SignalAt(bd.infer.Callback):
    """Sends ``signum`` to this process at the start (in the middle of the epoch's steps: the epoch is abandoned)
    or at the end (after its steps: the epoch is kept) of epoch ``epoch``, as a Ctrl-C or a ``kill`` would."""

    def __init__(self, epoch, signum, where):
        self.epoch, self.signum, self.where = epoch, signum, where

    def _send(self, state, where):
        if state.epoch == self.epoch and self.where == where:
            import os

            os.kill(os.getpid(), self.signum)

    def on_epoch_start(self, state):
        self._send(state, "start")

    def on_epoch_end(self, state):
        self._send(state, "end")


def _resumable_run(path, *, signal_at=None, resume=None, loader=False, lr_warmup="auto"):
    """8 epochs of sparse-vd (KL warm-up and lr decay under way, held-out evaluation drawing from the global
    generator) on the tiny classifier, 3 steps per epoch, checkpointing every 3 epochs: (state tensors, history,
    metrics)."""
    import pyro
    from helpers import tiny_classifier
    from torch.utils.data import DataLoader, TensorDataset

    pyro.set_rng_seed(0)
    model, guide, x, y = tiny_classifier("sparse-vd")
    data = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True) if loader else (x, y)
    callbacks = [] if signal_at is None else [_SignalAt(*signal_at)]
    result = bd.fit(
        model,
        guide,
        data,
        epochs=8,
        batch_size=None if loader else 16,
        progress=False,
        test=(x, y),
        test_samples=3,
        checkpoint=path,
        checkpoint_every=3,
        resume=resume,
        callbacks=callbacks,
        lr_warmup=lr_warmup,
    )
    tensors = [*model.state_dict().values(), *guide.state_dict().values()]
    return tensors, result.history, bd.evaluate(model, guide, (x, y), num_samples=5)


def _max_difference(a, b):
    """The largest difference between two runs' parameters, histories (``seconds`` aside) and metrics."""
    (ta, ha, ma), (tb, hb, mb) = a, b
    assert len(ta) == len(tb) and set(ha) == set(hb) and set(ma) == set(mb)
    diffs = [float((u - v).abs().max()) for u, v in zip(ta, tb)]
    diffs += [abs(u - v) for k in ha if k != "seconds" for u, v in zip(ha[k], hb[k], strict=True)]
    diffs += [abs(ma[k] - mb[k]) for k in ma]
    return max(diffs)


@pytest.mark.parametrize("where", ["start", "end"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_interrupted_fit_resumes_to_the_uninterrupted_run(tmp_path, signame, where):
    """SIGINT / SIGTERM at epoch 4 (in the middle of its steps, or after them): fit saves, raises FitInterrupted
    (a KeyboardInterrupt), restores the previous signal handlers; resumed from the file, the run ends with the
    uninterrupted run's parameters, history and metrics (to 1e-6; in fact bit for bit)."""
    import signal

    signum = getattr(signal, signame)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    reference = _resumable_run(tmp_path / "reference.pt")
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt) as info:
        _resumable_run(path, signal_at=(4, signum, where))
    err = info.value
    assert isinstance(err, bd.FitInterrupted) and err.signum == signum
    assert err.epochs_done == (4 if where == "start" else 5) and err.checkpoint == str(path)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert bd.infer.checkpoint.read_checkpoint(path)["training"]["epoch"] == err.epochs_done
    resumed = _resumable_run(path, resume=path)
    assert len(resumed[1]["elbo"]) == 8
    assert _max_difference(reference, resumed) <= 1e-6


def test_a_run_interrupted_during_the_learning_rate_warm_up_resumes_to_the_uninterrupted_run(tmp_path):
    """A warm-up over 15 of the 24 steps, interrupted at epoch 4 (steps 12-14): the resumed run takes each step's
    rate from the step count the checkpoint keeps, and ends as the uninterrupted run."""
    import signal

    reference = _resumable_run(tmp_path / "reference.pt", lr_warmup=15)
    with pytest.raises(bd.FitInterrupted):
        _resumable_run(tmp_path / "run.pt", signal_at=(4, signal.SIGINT, "start"), lr_warmup=15)
    resumed = _resumable_run(tmp_path / "run.pt", resume=tmp_path / "run.pt", lr_warmup=15)
    # each epoch's last step: the warm-up's factor (3 (e + 1) / 15, below 1 before epoch 4) times the decay
    assert reference[1]["lr"] == pytest.approx([1e-2 * min(1, (e + 1) / 5) * (1 - e / 8) for e in range(8)])
    assert _max_difference(reference, resumed) <= 1e-6


def test_a_checkpoint_from_before_the_learning_rate_warm_up_resumes_without_it(tmp_path):
    """A checkpoint whose settings lack ``lr_warmup`` (written before it existed) ran without a warm-up: it resumes
    with ``lr_warmup=0``, and the default, which warms up a network of 512 inputs (2 of 20 steps), is refused naming
    the setting."""
    path = tmp_path / "old.pt"
    x = torch.randn(40, 512, generator=torch.Generator().manual_seed(0))
    y = _xy()[1]

    def _wide_classifier():
        torch.manual_seed(0)
        model = bd.Classifier(bd.models.mlp(512, [8], 3), num_data=40)
        return model, bd.DropoutGuide(model)

    model, guide = _wide_classifier()
    bd.fit(model, guide, (x, y), epochs=1, batch_size=4, lr_warmup=0, progress=False, checkpoint=path)
    state = bd.infer.checkpoint.read_checkpoint(path)
    del state["training"]["fit"]["lr_warmup"]
    state["training"]["fit"]["epochs"] = state["training"]["epochs"] = 2
    state["training"]["complete"] = False
    torch.save(state, path)
    model, guide = _wide_classifier()
    with pytest.raises(ValueError, match=r"`resume` .*lr_warmup=0 there, 2 here"):
        bd.fit(model, guide, (x, y), epochs=2, batch_size=4, progress=False, resume=path)
    result = bd.fit(model, guide, (x, y), epochs=2, batch_size=4, lr_warmup=0, progress=False, resume=path)
    assert len(result.history["elbo"]) == 2


def test_a_shuffled_dataloader_resumes_in_the_same_order(tmp_path):
    """A DataLoader with shuffle=True draws its order from the global generator, which the checkpoint keeps."""
    import signal

    reference = _resumable_run(tmp_path / "reference.pt", loader=True)
    with pytest.raises(bd.FitInterrupted):
        _resumable_run(tmp_path / "run.pt", signal_at=(2, signal.SIGINT, "start"), loader=True)
    resumed = _resumable_run(tmp_path / "run.pt", resume=tmp_path / "run.pt", loader=True)
    assert _max_difference(reference, resumed) <= 1e-6


def test_resume_and_checkpoint_every_are_checked_before_any_step(tmp_path):
    """Every bad ``checkpoint_every`` or ``resume`` is a ValueError / TypeError naming it, raised before a step
    changes a parameter."""
    x, y = _xy()
    model, guide = _classifier()
    good = tmp_path / "good.pt"
    bd.fit(model, guide, (x, y), epochs=2, progress=False, checkpoint=good)
    bd.save_checkpoint(tmp_path / "plain.pt", model, guide)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    torch.manual_seed(1)
    wide = bd.Classifier(bd.models.mlp(4, [9], 3), num_data=40)
    bd.fit(wide, bd.DropoutGuide(wide), (x, y), epochs=2, progress=False, checkpoint=tmp_path / "wide.pt")
    cases = [
        ({"checkpoint": good, "checkpoint_every": 0}, ValueError, "`checkpoint_every`"),
        ({"checkpoint": good, "checkpoint_every": 1.5}, TypeError, "`checkpoint_every`"),
        ({"checkpoint": good, "checkpoint_every": True}, TypeError, "`checkpoint_every`"),
        ({"checkpoint_every": 2}, ValueError, "`checkpoint_every` needs `checkpoint`"),
        ({"resume": tmp_path / "missing.pt"}, ValueError, "`resume`.*not an existing checkpoint"),
        ({"resume": tmp_path}, ValueError, "`resume`.*not an existing checkpoint"),
        ({"resume": 3}, TypeError, "`resume`"),
        ({"resume": tmp_path / "junk.pt"}, ValueError, "`resume`.*not a readable bayesdrop checkpoint"),
        ({"resume": tmp_path / "plain.pt"}, ValueError, "`resume`.*holds no training state"),
        ({"resume": good, "epochs": 3}, ValueError, r"`resume`.*epochs=2 there, 3 here"),
        ({"resume": good, "epochs": 2, "lr": 0.5}, ValueError, r"`resume`.*lr=0.01 there, 0.5 here"),
        ({"resume": good, "epochs": 2, "run_config": {"a": 1}}, ValueError, "`resume`.*`run_config`"),
        ({"resume": tmp_path / "wide.pt", "epochs": 2}, ValueError, "`resume`.*model state does not fit"),
    ]
    model, guide = _classifier()
    guide(x)
    initial = [p.detach().clone() for p in [*model.parameters(), *guide.parameters()]]
    for kwargs, kind, match in cases:
        with pytest.raises(kind, match=match):
            bd.fit(model, guide, (x, y), **{"epochs": 1, "progress": False, **kwargs})
    for p, q in zip([*model.parameters(), *guide.parameters()], initial):
        assert torch.equal(p, q)
    result = bd.fit(model, guide, (x, y), epochs=2, progress=False, resume=good)  # a finished run: no epoch more
    assert len(result.history["elbo"]) == 2


def test_concurrent_checkpoint_writers_never_publish_a_torn_file(tmp_path):
    """Two threads save 200 checkpoints each to one path while a third loads it: every load succeeds and holds
    one writer's state whole; no temporary file remains."""
    import threading

    path = tmp_path / "shared.pt"
    modules = []
    for k in range(2):
        model, guide = _classifier()
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(k))
        modules.append((model, guide))
    bd.save_checkpoint(path, *modules[0], history={"writer": [0.0]})
    done = threading.Event()
    failures, loads = [], [0]

    def write(k):
        model, guide = modules[k]
        for _ in range(200):
            bd.save_checkpoint(path, model, guide, history={"writer": [float(k)]})

    def read():
        while not done.is_set():
            try:
                state = bd.infer.checkpoint.read_checkpoint(path)
                k = state["history"]["writer"][0]
                assert all(bool((v == k).all()) for n, v in state["model"].items() if n.endswith("weight"))
                loads[0] += 1
            except Exception as err:  # a torn file
                failures.append(err)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert not failures and loads[0] > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.pt"]


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    """A full disk (ENOSPC from fsync) or a missing directory: an OSError naming the target; the previous file is
    intact and no temporary file remains."""
    import errno
    import os

    from bayesdrop import fileio

    path = tmp_path / "metrics.json"
    fileio.atomic_write_text(path, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as info:
        fileio.atomic_write_json(path, {"acc": 1.0})
    assert info.value.filename == str(path)
    monkeypatch.undo()
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with pytest.raises(FileNotFoundError) as info:
        fileio.atomic_write_text(tmp_path / "missing" / "x.json", "{}")
    assert info.value.filename == str(tmp_path / "missing" / "x.json")


# ----------------------------------------------------------------------------- run directories

_TRAIN = ["train", "--arch", "mlp:8", "--epochs", "2", "--num-samples", "2", "--quiet"]


def test_a_second_train_into_a_directory_in_use_refuses(tmp_path, capsys):
    """While a process holds the run (its lock), ``train`` into the same --out refuses, naming the directory; the
    lock goes with its holder."""
    from bayesdrop import cli
    from bayesdrop.experiments import runs

    out = tmp_path / "run"
    with runs.RunLock(out, create=True):
        assert cli.main([*_TRAIN, "--out", str(out)]) == 2
        assert "is in use by another bayesdrop process" in capsys.readouterr().err
        assert cli.main(["report", str(out)]) == 2
    assert cli.main([*_TRAIN, "--out", str(out)]) == 0


def test_out_refuses_symbolic_links(tmp_path, capsys):
    """--out a symbolic link, or a link planted in --out (even with --overwrite): refused, the target untouched."""
    import os

    from bayesdrop import cli

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "link"
    os.symlink(tmp_path / "elsewhere", link)
    assert cli.main([*_TRAIN, "--out", str(link)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    for name in ("history.json", ".lock", "checkpoint.pt"):
        out = tmp_path / f"out_{name}"
        out.mkdir()
        os.symlink(victim, out / name)
        for extra in ([], ["--overwrite"], ["--resume"]):
            assert cli.main([*_TRAIN, "--out", str(out), *extra]) == 2
            assert "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "keep" and not (tmp_path / "elsewhere").exists()


def test_out_must_be_empty_unless_overwrite(tmp_path, capsys):
    """A second run into a used --out is refused; --overwrite replaces every file of the first (an earlier
    report's too); --overwrite with --resume is refused."""
    import json

    from bayesdrop import cli

    out = tmp_path / "run"
    assert cli.main([*_TRAIN, "--out", str(out)]) == 0
    (out / "report.md").write_text("an earlier run's report")
    assert cli.main([*_TRAIN, "--method", "gaussian", "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err and (out / "report.md").exists()
    assert cli.main([*_TRAIN, "--method", "gaussian", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["method"] == "gaussian"
    assert not (out / "report.md").exists() and (out / "complete.json").exists()
    assert cli.main([*_TRAIN, "--out", str(out), "--overwrite", "--resume"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert cli.main([*_TRAIN, "--out", str(out), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_report_refuses_a_config_that_does_not_match_the_checkpoint_or_an_incomplete_run(tmp_path, capsys):
    """config.json of another (valid) run beside the checkpoint: refused by report naming both files; without the
    completion marker: refused as incomplete, with the command that continues it."""
    import json

    from bayesdrop import cli

    out = _run_dir(tmp_path, method="gaussian")
    assert cli.main(["report", str(out), "--num-samples", "2"]) == 2
    err = capsys.readouterr().err
    assert "config.json does not match the configuration embedded in" in err and "checkpoint.pt" in err
    assert "method: 'gaussian' in config.json, 'bernoulli' in the checkpoint" in err
    config = json.loads((out / "config.json").read_text())
    config["method"] = "bernoulli"
    (out / "config.json").write_text(json.dumps(config))
    (out / "complete.json").unlink()
    assert cli.main(["report", str(out), "--num-samples", "2"]) == 2
    err = capsys.readouterr().err
    assert "incomplete run (stopped after 1 of 1 epochs)" in err and "--resume" in err


def test_train_resume_checks_the_options_against_the_run(tmp_path, capsys):
    """``train --resume`` takes the run's config.json; an option given that disagrees with it is refused."""
    from bayesdrop import cli

    out = tmp_path / "run"
    assert cli.main([*_TRAIN, "--out", str(out)]) == 0
    (out / "complete.json").unlink()
    assert cli.main([*_TRAIN[:3], "--epochs", "5", "--out", str(out), "--resume"]) == 2
    assert "--epochs 5 (the run has 2)" in capsys.readouterr().err
    assert cli.main(["train", "--out", str(out), "--resume", "--quiet", "--num-samples", "2"]) == 0
    assert cli.main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no run to continue" in capsys.readouterr().err


def _consistent(out, killed=False):
    """A run directory after a signal: absent, or holding a valid config.json and, if any, a whole checkpoint of
    that run; complete.json only beside every file; no temporary file unless the writer was ``killed`` (SIGKILL:
    the next run removes it).  Returns whether the run is complete."""
    import json

    from bayesdrop.experiments import runs

    if not out.exists():
        return False
    names = {p.name for p in out.iterdir()} - {".lock"}
    temporary = {n for n in names if n.startswith(".") and n.endswith(".tmp")}
    assert killed or not temporary, names  # a signalled writer removes its temporary file
    names -= temporary
    if "config.json" not in names:
        assert names <= set(), names
        return False
    config = runs.read_config(out / "config.json")
    if "checkpoint.pt" in names:
        assert bd.infer.checkpoint.read_checkpoint(out / "checkpoint.pt")["config"] == config
    if "complete.json" in names:
        assert {"checkpoint.pt", "history.json", "metrics.json"} <= names
        json.loads((out / "metrics.json").read_text())
        return True
    return False


def _start_train(out, epochs, *extra):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "bayesdrop.cli", *_TRAIN[:3], "--epochs", str(epochs), "--num-samples", "2"]
    argv += ["--quiet", "--checkpoint-every", "1", "--out", str(out), *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, proc, timeout=60.0):
    while not path.exists() and proc.poll() is None and timeout > 0:
        time.sleep(0.02)
        timeout -= 0.02


def test_a_killed_train_leaves_a_consistent_run_that_resume_completes(tmp_path, capsys):
    """``bayesdrop train`` in a subprocess, SIGTERM after its first checkpoint: exit 143, one line naming the
    command that resumes; the directory holds config and checkpoint of one run; ``--resume`` ends with the
    history and metrics of an uninterrupted run."""
    import json
    import signal

    from bayesdrop import cli

    out = tmp_path / "killed"
    proc = _start_train(out, 8)
    _wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # pragma: no cover - the run finished before the signal (a very fast machine)
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "(SIGTERM); resume with: bayesdrop train" in lines[0] and "--resume" in lines[0]
    assert _consistent(out) is False
    argv = [*_TRAIN[:3], "--epochs", "8", "--num-samples", "2", "--quiet", "--checkpoint-every", "1"]
    assert cli.main([*argv, "--out", str(out), "--resume"]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert _consistent(out) is True
    for name in ("history.json", "metrics.json"):
        a, b = (json.loads((d / name).read_text()) for d in (out, tmp_path / "whole"))
        for key in a:
            if key not in ("seconds", "seconds_per_epoch"):
                assert a[key] == pytest.approx(b[key], abs=1e-6), (name, key)


@pytest.mark.slow
def test_kills_at_twenty_random_points_never_leave_an_inconsistent_run(tmp_path):
    """SIGINT, SIGTERM or SIGKILL at 20 random times of a `bayesdrop train`, each followed by `--resume` (or a new
    start where nothing was written yet): after every kill the directory is consistent, and the run ends with an
    uninterrupted run's history and metrics.  Two concurrent trains into one --out: one refuses."""
    import json
    import random
    import signal

    from bayesdrop import cli

    rng = random.Random(0)
    out, epochs = tmp_path / "run", 30
    for _ in range(20):  # a finished run is started again with --overwrite, so that every kill meets a run
        if _consistent(out, killed=True):
            extra = ["--overwrite"]
        else:
            extra = ["--resume"] if (out / "config.json").exists() else []
        proc = _start_train(out, epochs, *extra)
        time.sleep(rng.uniform(0.3, 4.0))
        signum = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signum, 128 + signum), err  # -signum: killed before bayesdrop took over
        _consistent(out, killed=signum == signal.SIGKILL)
    argv = [*_TRAIN[:3], "--epochs", str(epochs), "--num-samples", "2", "--quiet", "--checkpoint-every", "1"]
    if not _consistent(out, killed=True):
        resume = ["--resume"] if (out / "config.json").exists() else ["--overwrite"]
        assert cli.main([*argv, "--out", str(out), *resume]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "whole")]) == 0
    for name in ("history.json", "metrics.json"):
        a, b = (json.loads((d / name).read_text()) for d in (out, tmp_path / "whole"))
        for key in a:
            if key not in ("seconds", "seconds_per_epoch"):
                assert a[key] == pytest.approx(b[key], abs=1e-6), (name, key)
    both = [_start_train(tmp_path / "shared", epochs) for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in both)
    errs = [p.stderr.read() for p in both]
    assert codes == [0, 2] and any("in use by another bayesdrop process" in e or "is not empty" in e for e in errs)


# ----------------------------------------------------------------------------- property tests of the validation layer

_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
)
_PROPERTY = settings(
    max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _names_an_argument(err, names):
    return any(f"`{name}`" in str(err) for name in names)


@_PROPERTY
@given(
    epochs=st.one_of(st.integers(-1, 2), _JUNK),
    batch_size=st.one_of(st.integers(-1, 64), _JUNK),
    lr=st.one_of(st.floats(1e-4, 0.1), _JUNK),
    kl_warmup=st.one_of(st.just("auto"), st.integers(-1, 3), _JUNK),
    lr_decay=st.one_of(st.sampled_from([None, "linear", "cosine"]), _JUNK),
    seed=st.one_of(st.integers(-1, 3), _JUNK),
    test_samples=st.one_of(st.integers(-1, 3), _JUNK),
    checkpoint_every=st.one_of(st.none(), st.integers(-1, 2), _JUNK),
    validate=st.one_of(st.none(), st.booleans(), _JUNK),
    jit=st.one_of(st.none(), st.booleans(), _JUNK),
    resume=st.one_of(st.none(), st.just("missing.pt"), _JUNK),
)
def test_fit_validates_every_argument_or_trains(**kwargs):
    """Any mix of valid and invalid arguments: a ValueError / TypeError naming one of them before training, or a
    run of the asked length with finite figures."""
    x, y = _xy()
    model, guide = _classifier()
    try:
        result = bd.fit(model, guide, (x, y), progress=False, test=(x, y), **kwargs)
    except (ValueError, TypeError) as err:
        assert _names_an_argument(err, kwargs), err
    except FloatingPointError as err:  # a valid but large learning rate may diverge: named, parameters restored
        assert "`lr`" in str(err)
    else:
        assert len(result.history["elbo"]) == kwargs["epochs"]
        assert all(math.isfinite(v) for values in result.history.values() for v in values)


def _file_error_named(err, names):
    """An OSError naming its file, or a ValueError / TypeError naming one of ``names``."""
    if isinstance(err, OSError) and not isinstance(err, ValueError):
        return bool(err.filename) or any(n in str(err) for n in names)
    return any(n in str(err) for n in names)


_MNIST_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@_PROPERTY
@given(
    target=st.sampled_from(_MNIST_NAMES),
    header=st.sampled_from(["none", "images", "labels", "huge"]),
    payload=st.binary(max_size=40),
    compressed=st.sampled_from(["raw", "gzip", "truncated gzip"]),
)
def test_the_idx_loader_meets_random_bytes_with_a_named_error(target, header, payload, compressed):
    """One of the four MNIST files replaced by random bytes (behind a real header or none, raw, gzipped or a cut
    gzip stream): load_mnist answers with a ValueError / TypeError / OSError naming the file, or loads data it
    checked."""
    import tempfile
    from pathlib import Path

    headers = {
        "none": b"",
        "images": _idx_header(2051, (2, 2, 2)),
        "labels": _idx_header(2049, (2,)),
        "huge": _idx_header(2051, (2**31 - 1, 2**31 - 1, 2**31 - 1)),
    }
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        _mnist_dir(root, gzip.compress(_idx_header(2051, (4, 28, 28)) + bytes(4 * 28 * 28)))
        for p in root.glob(f"{target}*"):
            p.unlink()
        data = headers[header] + payload
        if compressed == "raw":
            (root / target).write_bytes(data)
        else:
            blob = gzip.compress(data)
            (root / f"{target}.gz").write_bytes(blob if compressed == "gzip" else blob[: len(blob) // 2])
        try:
            ds = bd.data.load_mnist(root)
        except (ValueError, TypeError, OSError) as err:
            assert _file_error_named(err, _MNIST_NAMES), err
        else:
            assert len(ds.train) == len(ds.train.y) and int(ds.train.y.max()) <= 9


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**7), st.floats(width=32), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
_CONFIG_VALUES = {
    "method": st.sampled_from(["bernoulli", "vbd", "nope"]),
    "hyper": st.dictionaries(st.sampled_from(["p", "q"]), _JSON, max_size=2),
    "dataset": st.sampled_from(["digits", "mnist"]),
    "arch": st.sampled_from(["mlp:8", "mlp:", "mlp:100000,100000", "lenet5", "rnn:0", "x"]),
    "epochs": st.integers(-1, 10**7),
    "batch_size": st.integers(-1, 10),
    "lr": st.floats(allow_nan=True, allow_infinity=True),
    "seed": st.integers(-2, 2),
    "kl_warmup": st.one_of(st.just("auto"), st.integers(-2, 2)),
    "lr_warmup": st.one_of(st.just("auto"), st.text(max_size=4), st.integers(-2, 2)),
}


@_PROPERTY
@given(
    config=st.fixed_dictionaries({}, optional={k: st.one_of(v, _JSON) for k, v in _CONFIG_VALUES.items()}),
    top=st.one_of(st.just(None), _JSON),
)
def test_read_config_answers_any_json_with_its_file_and_key(config, top):
    """Any JSON document as config.json: read_config (and the architecture's parser) accept it or raise a
    ValueError / TypeError naming the file (or --arch)."""
    import json
    import tempfile
    from pathlib import Path

    from bayesdrop.experiments import runs

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.json"
        path.write_text(json.dumps(config if top is None else top))
        try:
            parsed = runs.read_config(path)
            runs.parse_arch(parsed["arch"])
        except (ValueError, TypeError) as err:
            assert "config.json" in str(err) or "`--arch`" in str(err), err
        else:
            assert 1 <= parsed["epochs"] <= 10**6
            assert parsed.get("lr_warmup", 0) == "auto" or parsed.get("lr_warmup", 0) >= 0


@pytest.fixture(scope="module")
def _resumable(tmp_path_factory):
    """A checkpoint of a finished 2-epoch run of the tiny classifier, as read back."""
    path = tmp_path_factory.mktemp("resumable") / "run.pt"
    x, y = _xy()
    model, guide = _classifier()
    bd.fit(model, guide, (x, y), epochs=2, progress=False, checkpoint=path)
    return bd.infer.checkpoint.read_checkpoint(path)


_TRAINING_KEYS = ["epoch", "epochs", "step", "complete", "fit", "schedule", "rng", "callbacks", "label_counts"]


@_PROPERTY
@given(
    part=st.sampled_from(["training", "optimizer", "history", "model", "config"]),
    key=st.sampled_from(_TRAINING_KEYS + ["rng.torch", "rng.numpy", "rng.python", "rng.generators", "callbacks.0"]),
    value=st.one_of(_JUNK, _JSON, st.just(torch.zeros(3, dtype=torch.uint8))),
)
def test_a_tampered_checkpoint_is_refused_by_resume(tmp_path, _resumable, part, key, value):
    """A checkpoint with one entry replaced by junk: ``fit(resume=...)`` raises a ValueError / TypeError naming
    ``resume`` before any step, or (where the entry is not used) resumes the finished run."""
    import copy

    state = copy.deepcopy(_resumable)
    if part == "training":
        node, *rest = key.split(".")
        if rest:
            inner = state["training"][node]
            idx = int(rest[0]) if isinstance(inner, list) else rest[0]
            if isinstance(inner, list) and idx >= len(inner):
                return
            inner[idx] = value
        else:
            state["training"][node] = value
    elif part == "model":
        state["model"] = {k: torch.zeros(1) for k in state["model"]}
    else:
        state[part] = value
    path = tmp_path / "tampered.pt"
    torch.save(state, path)
    x, y = _xy()
    model, guide = _classifier()
    guide(x)
    before = [p.detach().clone() for p in model.parameters()]
    try:
        result = bd.fit(model, guide, (x, y), epochs=2, progress=False, resume=path)
    except (ValueError, TypeError) as err:
        assert "`resume`" in str(err), err
        assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    else:
        assert len(result.history["elbo"]) == 2


def _tamper_optimizer_shape(state):
    entry = next(iter(state["optimizer"]["state"].values()))
    entry["exp_avg"] = torch.zeros(7, 5)


def _tamper_optimizer_groups(state):
    state["optimizer"]["param_groups"][0]["params"] = state["optimizer"]["param_groups"][0]["params"][:-1]


def _tamper_optimizer_ids(state):
    group = state["optimizer"]["param_groups"][0]
    group["params"] = [group["params"][0]] * len(group["params"])


def _tamper_optimizer_unknown(state):
    state["optimizer"]["state"][10**6] = {}


def _tamper_optimizer_int_moments(state):
    entry = next(iter(state["optimizer"]["state"].values()))
    entry["exp_avg_sq"] = entry["exp_avg_sq"].long()


_TAMPERED = {
    "step": (lambda s: s["training"].__setitem__("step", -1), "step -1"),
    "epoch": (lambda s: s["training"].__setitem__("epoch", 5), "epoch 5 of 2"),
    "schedule": (lambda s: s["training"]["schedule"].__setitem__("beta", "one"), "'schedule'"),
    "warnings": (lambda s: s["training"].__setitem__("warnings", [3]), "'warnings'"),
    "label_counts": (lambda s: s["training"].__setitem__("label_counts", -torch.ones(3)), "'label_counts'"),
    "callbacks": (lambda s: s["training"].__setitem__("callbacks", [{"state": {}}]), "callback states"),
    "history": (lambda s: s["history"].__setitem__("elbo", ["x", "y"]), "dict of lists of numbers"),
    "history-length": (lambda s: s["history"].__setitem__("elbo", [1.0]), "does not hold the 2 epochs"),
    "optimizer-shape": (_tamper_optimizer_shape, r"has shape \(7, 5\)"),
    "optimizer-groups": (_tamper_optimizer_groups, "parameter groups of sizes"),
    "optimizer-ids": (_tamper_optimizer_ids, r"not a torch optimiser's \(parameter ids\)"),
    "optimizer-unknown": (_tamper_optimizer_unknown, "names a parameter 1000000"),
    "optimizer-moments": (_tamper_optimizer_int_moments, "is not a float tensor"),
}


@pytest.mark.parametrize("what", list(_TAMPERED))
def test_each_structural_check_of_resume_names_what_it_found(tmp_path, _resumable, what):
    """One entry of a checkpoint changed into what fit never writes, as a hand-edited or crafted file would:
    ``fit(resume=...)`` says which, naming ``resume``, before any step."""
    import copy

    state = copy.deepcopy(_resumable)
    tamper, message = _TAMPERED[what]
    tamper(state)
    path = tmp_path / "tampered.pt"
    torch.save(state, path)
    x, y = _xy()
    model, guide = _classifier()
    guide(x)
    before = [p.detach().clone() for p in [*model.parameters(), *guide.parameters()]]
    with pytest.raises(ValueError, match=f"`resume` .*{message}"):
        bd.fit(model, guide, (x, y), epochs=2, progress=False, resume=path)
    assert all(torch.equal(p, q) for p, q in zip([*model.parameters(), *guide.parameters()], before))


@_PROPERTY
@given(cut=st.integers(0, 2000), flips=st.lists(st.integers(0, 2000), max_size=4))
def test_a_corrupt_checkpoint_file_is_refused_with_its_name(tmp_path, _resumable, cut, flips):
    """A checkpoint cut short or with flipped bytes: read_checkpoint (weights_only) raises a ValueError naming the
    file, or reads a state it checked."""
    import io

    buf = io.BytesIO()
    torch.save(_resumable, buf)
    blob = bytearray(buf.getvalue())
    for i in flips:
        blob[i % len(blob)] ^= 0xFF
    path = tmp_path / "corrupt.pt"
    path.write_bytes(bytes(blob[: len(blob) - cut]))
    try:
        state = bd.infer.checkpoint.read_checkpoint(path)
    except ValueError as err:
        assert "corrupt.pt" in str(err), err
    else:
        assert isinstance(state["model"], dict)


def test_a_flipped_bit_inside_a_tensor_is_refused_not_loaded(tmp_path, _resumable):
    """torch.load does not check the archive's CRC-32s: one flipped bit in a tensor's bytes loaded as a changed
    weight.  read_checkpoint checks them and names the corrupt member."""
    path = tmp_path / "bitflip.pt"
    torch.save(_resumable, path)
    _flip_a_bit_of(path, "/data/")
    assert torch.load(path, weights_only=True)["format"] == _resumable["format"]  # torch itself loads it
    with pytest.raises(ValueError, match=r"bitflip.pt.*corrupt: the bytes of its member .*/data/"):
        bd.infer.checkpoint.read_checkpoint(path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.pt' is not a readable bayesdrop checkpoint: the file ends early"):
        bd.infer.checkpoint.read_checkpoint(tmp_path / "empty.pt")


def test_a_signal_the_process_ignores_stays_ignored_while_work_is_deferred():
    """A job a script starts in the background ignores SIGINT: ``DeferredSignals`` (fit, netCDF writes) leaves it
    ignored (it used to record it, and fit stopped on a SIGINT the process had chosen to ignore), and defers the
    SIGTERM it does handle."""
    import os
    import signal

    from bayesdrop.fileio import DeferredSignals

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with DeferredSignals() as deferred:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert deferred.signum is None
            os.kill(os.getpid(), signal.SIGTERM)
            assert deferred.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
