"""The arguments of save_checkpoint, load_checkpoint and the Checkpoint callback: each bad one gets a TypeError or
ValueError naming it, before a file is written or read, and nothing is written that the library's own loader
(``torch.load(weights_only=True)``) would refuse."""

from __future__ import annotations

import enum
import io
import pickle
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest
import torch

import bayesdrop as bd
from bayesdrop.infer.checkpoint import check_checkpoint_path, check_storable, read_checkpoint


def _classifier(seed: int = 0):
    """A tiny classifier and its guide, initialised on a batch (the guide records its layers' shapes then)."""
    torch.manual_seed(seed)
    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
    guide = bd.DropoutGuide(model)
    x, y = _xy()
    guide(x, y)
    return model, guide


def _xy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)


def _same(a, b) -> bool:
    """Equal values of the same types, containers compared entry by entry (tensors with torch.equal)."""
    if type(a) is not type(b):
        return False
    if torch.is_tensor(a):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    return a == b


class Colour(enum.IntEnum):
    RED = 1


class Half(float):
    pass


class Marked(torch.Tensor):
    pass


Pair = namedtuple("Pair", "a b")

STORABLE = {
    "None": None,
    "bool": True,
    "int": 3,
    "a large int": 2**70,
    "float": 1.5,
    "complex": 1 + 2j,
    "str": "adam",
    "bytes": b"\x00\x01",
    "list": [1, 2.5, "a"],
    "tuple": (1, (2, 3)),
    "set": {1, "a"},
    "dict with str keys": {"a": 1, "b": [None, False]},
    "dict with int keys": {0: {"step": torch.tensor(3.0)}},
    "dict with tuple keys": {(1, "a"): 2},
    "OrderedDict": OrderedDict(w=torch.ones(2)),
    "tensor": torch.arange(3),
    "bool tensor": torch.tensor([True, False]),
    "Parameter": torch.nn.Parameter(torch.zeros(2)),
    "torch.Size": torch.Size([2, 3]),
    "torch.dtype": torch.float64,
    "torch.device": torch.device("cpu"),
    "nested": {"layers": [{"width": 8, "method": ("bernoulli", {"p": 0.5})}], "seed": None},
}

NOT_STORABLE = {  # the value, and the type (with the hint) that the error gives
    "object": (object(), "object is not storable"),
    "NumPy float": (np.float64(1.0), r"numpy.float64 is not storable in a checkpoint \(a NumPy value"),
    "NumPy int": (np.int64(1), r"numpy.int64 is not storable in a checkpoint \(a NumPy value"),
    "NumPy array": (np.zeros(2), r"numpy.ndarray is not storable in a checkpoint \(a NumPy value"),
    "IntEnum": (Colour.RED, r"\S*Colour is not storable in a checkpoint \(a subclass of int"),
    "float subclass": (Half(0.5), r"\S*Half is not storable in a checkpoint \(a subclass of float"),
    "named tuple": (Pair(1, 2), r"\S*Pair is not storable in a checkpoint \(a subclass of tuple"),
    "defaultdict": (defaultdict(list), r"collections.defaultdict is not storable in a checkpoint \(a subclass of dict"),
    "frozenset": (frozenset([1]), "frozenset is not storable"),
    "range": (range(3), "range is not storable"),
    "slice": (slice(1, 2), "slice is not storable"),
    "tensor subclass": (
        torch.zeros(2).as_subclass(Marked),
        r"\S*Marked is not storable in a checkpoint \(a subclass of Tensor",
    ),
}


@pytest.mark.parametrize("value", list(STORABLE.values()), ids=list(STORABLE))
def test_check_storable_accepts_what_a_checkpoint_reads_back_unchanged(value, tmp_path):
    """Every kind of value that check_storable accepts, saved as a checkpoint's config, is read back by the library's
    own loader (torch.load with weights_only=True) equal and of the same type."""
    check_storable({"v": value}, "config")
    model, guide = _classifier()
    path = tmp_path / "ck.pt"
    bd.save_checkpoint(path, model, guide, config={"v": value})
    back = read_checkpoint(path)["config"]["v"]
    if isinstance(value, set):
        assert type(back) is set and back == value
    else:
        assert _same(back, value), (back, value)


@pytest.mark.parametrize("value,kind", list(NOT_STORABLE.values()), ids=list(NOT_STORABLE))
def test_check_storable_refuses_what_a_checkpoint_cannot_read_back_naming_the_key_path(value, kind):
    """Each value that torch.load(weights_only=True) refuses (or would read back as another type) is a TypeError
    naming the argument and the key path to it, its type and what a checkpoint stores."""
    buffer = io.BytesIO()
    torch.save({"v": value}, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):  # the loader refuses it: the check is not stricter than needed
        torch.load(buffer, weights_only=True)
    with pytest.raises(TypeError, match=rf"^`run_config\['a'\]\[1\]\['v'\]`: {kind}") as err:
        check_storable({"a": [0, {"v": value}]}, "run_config")
    assert "use None, bool, int, float, str, tensors" in str(err.value)


def test_check_storable_refuses_a_key_or_set_element_that_is_not_storable_and_handles_cycles():
    """A dict key or a set element of another type is a TypeError naming where it is; a list that holds itself
    (which torch saves and reads back) is checked once, without endless recursion."""
    with pytest.raises(TypeError, match=r"`run_config\['a'\]`: its key .* is not storable"):
        check_storable({"a": {object(): 1}}, "run_config")
    with pytest.raises(TypeError, match=r"an element of the set `run_config\['s'\]`: object is not storable"):
        check_storable({"s": {object()}}, "run_config")
    cycle: list = [1]
    cycle.append(cycle)
    check_storable({"c": cycle, "again": cycle}, "run_config")
    with pytest.raises(TypeError, match=r"`run_config\['c'\]\[2\]`: object"):
        check_storable({"c": [*cycle, object()]}, "run_config")


def test_save_checkpoint_refuses_a_config_it_could_not_load_and_writes_nothing(tmp_path):
    """save_checkpoint(config={'a': object()}), which used to write a file that load_checkpoint then blamed
    ("not a readable bayesdrop checkpoint"), is a TypeError naming `config['a']`; no file is written, and an
    existing checkpoint is left as it was.  A config that is not a dict is a TypeError naming `config`."""
    model, guide = _classifier()
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"`config\['a'\]`: object is not storable in a checkpoint"):
        bd.save_checkpoint(path, model, guide, config={"a": object()})
    assert not path.exists() and list(tmp_path.iterdir()) == []
    bd.save_checkpoint(path, model, guide, config={"a": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"`config\['b'\]\[0\]`: numpy.float64"):
        bd.save_checkpoint(path, model, guide, config={"a": 1, "b": [np.float64(2.0)]})
    with pytest.raises(TypeError, match="`config` must be None or a dict, got list"):
        bd.save_checkpoint(path, model, guide, config=[("a", 1)])  # type: ignore[arg-type]
    assert path.read_bytes() == before
    assert bd.load_checkpoint(path, model, guide)["config"] == {"a": 1}


@pytest.mark.parametrize(
    "history,message",
    [
        ("abc", r"`history` must be None or a dict of lists of numbers, got str"),
        ([1.0, 2.0], r"`history` must be None or a dict of lists of numbers, got list"),
        ({1: [1.0]}, r"`history` must be keyed by metric names \(str\), got the key 1"),
        ({"nll": (1.0, 2.0)}, r"`history\['nll'\]` must be a list of numbers .*got tuple"),
        ({"nll": [1.0, True]}, r"`history\['nll'\]\[1\]` must be a number \(int or float\), got bool"),
        ({"nll": [torch.tensor(1.0)]}, r"`history\['nll'\]\[0\]` must be a number .*got Tensor .*float\(\)"),
        ({"nll": [1.0], "acc": [np.float64(0.5)]}, r"`history\['acc'\]\[0\]` must be a number .*got float64"),
    ],
    ids=["str", "list", "int key", "tuple of numbers", "bool", "tensor", "NumPy float"],
)
def test_save_checkpoint_refuses_a_history_that_is_not_a_dict_of_lists_of_numbers(history, message, tmp_path):
    """history must be what fit records (a dict of lists of int or float, one per epoch) or None: anything else is
    a TypeError naming the entry, and no file is written."""
    model, guide = _classifier()
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=message):
        bd.save_checkpoint(path, model, guide, history=history)
    assert not path.exists()


def test_a_valid_history_round_trips_through_a_checkpoint(tmp_path):
    """A dict of lists of ints and floats (NaN included, as a diverged epoch records) is saved and read back equal."""
    model, guide = _classifier()
    history = {"elbo": [2.5, float("nan")], "epoch": [0, 1]}
    bd.save_checkpoint(tmp_path / "ck.pt", model, guide, history=history)
    back = bd.load_checkpoint(tmp_path / "ck.pt", model, guide)["history"]
    assert back["epoch"] == [0, 1] and back["elbo"][0] == 2.5 and np.isnan(back["elbo"][1])


def test_save_checkpoint_refuses_a_training_state_fit_could_not_resume_from(tmp_path):
    """training must be None or a training state as fit writes it: a str is a TypeError naming `training`, a dict
    without its entries a ValueError listing them, an entry of the wrong type or an unstorable value a TypeError
    naming the entry.  The training state of a fit-written checkpoint is accepted and resumes."""
    model, guide = _classifier()
    x, y = _xy()
    written = tmp_path / "fit.pt"
    bd.fit(model, guide, (x, y), epochs=1, progress=False, checkpoint=written)
    saved = read_checkpoint(written)
    training = saved["training"]
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"`training` must be None or the training state of a run .*got str"):
        bd.save_checkpoint(path, model, guide, training="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`training` must be a training state .*it lacks \['epoch', 'epochs'"):
        bd.save_checkpoint(path, model, guide, training={"fit": {}})
    with pytest.raises(TypeError, match=r"`training\['epoch'\]` must be int, got str"):
        bd.save_checkpoint(path, model, guide, training={**training, "epoch": "1"})
    with pytest.raises(TypeError, match=r"`training\['complete'\]` must be bool, got int"):
        bd.save_checkpoint(path, model, guide, training={**training, "complete": 1})
    with pytest.raises(TypeError, match=r"`training\['warnings'\]\[0\]`: object is not storable"):
        bd.save_checkpoint(path, model, guide, training={**training, "warnings": [object()]})
    assert not path.exists()
    optimizer = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()))
    optimizer.load_state_dict(saved["optimizer"])
    bd.save_checkpoint(path, model, guide, optimizer=optimizer, history=saved["history"], training=training)
    result = bd.fit(model, guide, (x, y), epochs=1, progress=False, resume=path)  # complete: no further epoch
    assert len(result.history["elbo"]) == 1


def test_save_checkpoint_names_a_path_model_guide_or_optimizer_of_the_wrong_type(tmp_path):
    """A path that is not a str or os.PathLike, a model or guide that is not a module, and an optimizer that is not
    None or a torch optimiser are TypeErrors naming the argument (not torch's AttributeError or os's message), and
    nothing is written."""
    model, guide = _classifier()
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"`path` must be a path \(str or os.PathLike\), got int"):
        bd.save_checkpoint(3, model, guide)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`path` must be a path \(str or os.PathLike\), got bytes"):
        bd.save_checkpoint(b"ck.pt", model, guide)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module .*got NoneType"):
        bd.save_checkpoint(path, None, guide)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`guide` must be a torch.nn.Module .*got str"):
        bd.save_checkpoint(path, model, "guide")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`optimizer` must be None or a torch.optim.Optimizer, got str"):
        bd.save_checkpoint(path, model, guide, optimizer="x")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_guide_built_for_another_model_is_refused_by_save_and_load(tmp_path):
    """save_checkpoint and load_checkpoint with the DropoutGuide of another (identically shaped) model are a
    ValueError naming `guide`, as bd.predict's; load_checkpoint then loads nothing into either module."""
    model, guide = _classifier()
    other, other_guide = _classifier(seed=1)
    path = tmp_path / "ck.pt"
    with pytest.raises(ValueError, match=r"`guide` must be the DropoutGuide built for `model`"):
        bd.save_checkpoint(path, model, other_guide)
    assert not path.exists()
    bd.save_checkpoint(path, model, guide)
    before = {k: v.clone() for k, v in [*other.state_dict().items(), *other_guide.state_dict().items()]}
    with pytest.raises(ValueError, match=r"`guide` must be the DropoutGuide built for `model`"):
        bd.load_checkpoint(path, other, guide)
    after = {**other.state_dict(), **other_guide.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module"):
        bd.load_checkpoint(path, None, guide)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "map_location,error,message",
    [
        ("bogus", ValueError, r"`map_location` must name a torch device such as 'cpu' or 'cuda:0', got 'bogus'"),
        ("cuda:99", ValueError, r"`map_location` is 'cuda:99' but (CUDA is not available|there are \d+ CUDA)"),
        (3, TypeError, r"`map_location` must be None, a device .*got int"),
        ({"cpu": 3}, TypeError, r"`map_location`: a dict must map device names \(str\) to device names"),
        ({"cuda:0": "nowhere"}, ValueError, r"`map_location` must name a torch device .*got 'nowhere'"),
    ],
    ids=["unknown device", "absent device", "int", "dict to int", "dict to unknown device"],
)
def test_load_checkpoint_names_a_bad_map_location_not_the_file(map_location, error, message, tmp_path):
    """A map_location torch.load cannot use is an error naming `map_location`, raised before the file is read (the
    file used to be blamed: "not a readable bayesdrop checkpoint")."""
    model, guide = _classifier()
    path = tmp_path / "ck.pt"
    bd.save_checkpoint(path, model, guide)
    with pytest.raises(error, match=message) as err:
        bd.load_checkpoint(path, model, guide, map_location=map_location)
    assert "readable" not in str(err.value)
    with pytest.raises(error, match=message):  # checked before the file: a missing one is not reported first
        read_checkpoint(tmp_path / "missing.pt", map_location=map_location)


@pytest.mark.parametrize(
    "map_location",
    [None, "cpu", torch.device("cpu"), {"cpu": "cpu"}, lambda storage, location: storage],
    ids=["None", "str", "torch.device", "dict", "function"],
)
def test_load_checkpoint_accepts_every_map_location_form_it_documents(map_location, tmp_path):
    """None, a device name, a torch.device, a dict of device names and a function load the saved state onto the
    CPU, into the modules."""
    model, guide = _classifier()
    path = tmp_path / "ck.pt"
    bd.save_checkpoint(path, model, guide)
    fresh, fresh_guide = _classifier(seed=1)
    state = bd.load_checkpoint(path, fresh, fresh_guide, map_location=map_location)
    assert all(v.device.type == "cpu" for v in state["model"].values())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


@pytest.mark.parametrize(
    "path,error,message",
    [
        (None, TypeError, r"`path` must be a path \(str or os.PathLike; the checkpoint file to write\), got NoneType"),
        (3, TypeError, r"`path` must be a path \(str or os.PathLike; the checkpoint file to write\), got int"),
        (b"x.pt", TypeError, r"`path` must be a path \(str or os.PathLike; the checkpoint file to write\), got bytes"),
        ("{tmp}/missing/x.pt", ValueError, r"`path` must be a file path in an existing directory, .*does not exist"),
        ("{tmp}", ValueError, r"`path` must be a file path in an existing directory, got .* \(a directory\)"),
    ],
    ids=["None", "int", "bytes", "missing directory", "a directory"],
)
def test_the_checkpoint_callback_checks_its_path_when_built(path, error, message, tmp_path):
    """bd.infer.Checkpoint(path) refuses, when built rather than after an epoch, a path that is not a str or
    os.PathLike (TypeError) and one in a missing directory or naming a directory (ValueError), naming `path`."""
    if isinstance(path, str):
        path = path.format(tmp=tmp_path)
    with pytest.raises(error, match=message):
        bd.infer.Checkpoint(path)


def test_the_checkpoint_callback_takes_a_new_file_in_an_existing_directory_and_saves_there(tmp_path):
    """A str or pathlib path of a file that does not exist yet (or one that does) is accepted, nothing is written
    when the callback is built, and fit's run writes the checkpoint there."""
    assert bd.infer.Checkpoint(str(tmp_path / "a.pt")).path == str(tmp_path / "a.pt")
    saver = bd.infer.Checkpoint(tmp_path / "b.pt", every=1)
    assert list(tmp_path.iterdir()) == []
    model, guide = _classifier()
    bd.fit(model, guide, _xy(), epochs=1, progress=False, callbacks=[saver])
    assert read_checkpoint(tmp_path / "b.pt")["training"]["epoch"] == 1
    bd.infer.Checkpoint(tmp_path / "b.pt")  # an existing file: replaced at the next save


def test_check_checkpoint_path_names_the_argument_it_is_given(tmp_path):
    """The shared path check names the caller's argument (fit's `checkpoint`) in both its errors."""
    with pytest.raises(TypeError, match=r"^`checkpoint` must be a path"):
        check_checkpoint_path(1.5, "checkpoint")
    with pytest.raises(ValueError, match=r"^`checkpoint` must be a file path in an existing directory"):
        check_checkpoint_path(tmp_path / "no" / "x.pt", "checkpoint")
    check_checkpoint_path(tmp_path / "x.pt", "checkpoint")
