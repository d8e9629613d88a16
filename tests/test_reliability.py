"""Hostile and unlucky inputs: each gets a clear error naming the argument or the file, before any work it would
spoil, or is handled correctly.  One test per finding (decompression bombs, another model's guide, non-finite
pruning thresholds, impossible probabilities)."""

from __future__ import annotations

import gzip
import re
import time
import tracemalloc

import numpy as np
import pytest
import torch

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


def _rewrite(src, dst, change):
    """Copy the zip ``src`` to ``dst`` with ``change(name, data) -> data`` applied to every entry."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change(info.filename, zin.read(info.filename)))


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
