"""bd.nn.Embedding: embedding dropout (Gal & Ghahramani 2016) drops whole word types, one draw of every row per
example; torch's embedding without noise; the folded test-time embedding; bayesianize."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import Bag

import bayesdrop as bd


def _tokens(n=6, steps=9, vocab=7, seed=0):
    return torch.randint(0, vocab, (n, steps), generator=torch.Generator().manual_seed(seed))


def test_a_word_type_is_dropped_at_every_position_it_occurs():
    """Inverted Bernoulli masks, one per row and example: every occurrence of a word in a sequence has the same
    multiplier, z[b, token]; sequences draw their own masks."""
    p = 0.5
    tokens = _tokens()
    model = bd.Classifier(Bag(bd.methods.get("bernoulli", p=p)), num_data=6)
    seen = []
    model.net.emb.register_forward_hook(lambda mod, args, out: seen.append(out))
    pyro.set_rng_seed(0)
    tr = poutine.trace(model).get_trace(tokens)
    z = tr.nodes["net.emb.noise"]["value"]  # (B, V)
    w = tr.nodes["net.emb.weight"]["value"]
    assert z.shape == (6, 7) and set(z.unique().tolist()) <= {0.0, 1 / (1 - p)}
    torch.testing.assert_close(seen[0], w[tokens] * z.gather(1, tokens).unsqueeze(-1))
    assert not torch.equal(z[0], z[1])


def test_without_noise_it_is_torchs_embedding_and_the_test_time_embedding_folds_the_mean():
    tokens = _tokens()
    ref = torch.nn.Embedding(7, 4)
    layer = bd.nn.Embedding(7, 4, bd.methods.get("bernoulli", p=0.0))
    with torch.no_grad():
        layer.init_value("weight").copy_(ref.weight)
    out = poutine.condition(layer, data={layer.site("weight"): layer.init_value("weight")})(tokens)
    torch.testing.assert_close(out, ref(tokens))
    model = bd.Classifier(Bag("vbd", vocab=7), num_data=6)
    guide = bd.DropoutGuide(model)
    guide(tokens)
    with torch.no_grad():
        plain = bd.compress.prune(model, guide)
        assert isinstance(plain.emb, torch.nn.Embedding)
        torch.testing.assert_close(plain(tokens), guide.mean_network(pruned=True)(tokens))


@pytest.mark.parametrize("method", ["bernoulli", "concrete", "sparse-vd", "dropconnect", "dropout++(0.5)"])
def test_methods_train_and_predict_on_token_sequences(method):
    tokens = _tokens(n=24)
    y = tokens[:, 0] % 3
    model = bd.Classifier(Bag(method), num_data=24)
    guide = bd.DropoutGuide(model)
    res = bd.fit(model, guide, (tokens, y), epochs=3, batch_size=8, progress=False, validate=False)
    assert all(torch.isfinite(torch.tensor(res.history["elbo"])))
    probs = bd.predict(model, guide, tokens, num_samples=3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(24))


def test_bayesianize_converts_embeddings_and_refuses_what_it_lacks():
    module = torch.nn.Sequential(torch.nn.Embedding(7, 4), torch.nn.Flatten(), torch.nn.Linear(36, 3))
    weight = module[0].weight.detach().clone()
    net = bd.bayesianize(module, bd.methods.get("bernoulli", p=0.0))  # in place
    assert isinstance(net[0], bd.nn.Embedding) and torch.equal(net[0].init_value("weight"), weight)
    with pytest.raises(ValueError, match="padding_idx=0"):
        bd.bayesianize(torch.nn.Sequential(torch.nn.Embedding(7, 4, padding_idx=0)))
    with pytest.raises(TypeError, match="`tokens` must be an integer tensor"):
        bd.nn.Embedding(7, 4)(torch.rand(2, 3))
    with pytest.raises(ValueError, match="acts on the input and recurrent noise of recurrent layers"):
        bd.nn.Embedding(7, 4, "variational-rnn")
    for method in ("standout", "cutout", "fast-dropout"):
        with pytest.raises(ValueError, match=f"'{method}' cannot act on an embedding"):
            bd.nn.Embedding(7, 4, method)
