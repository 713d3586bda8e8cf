"""`symlstm bench --torch-train`: PyTorch follows the recipe's keys (the reference row of the ablation)."""
import numpy as np
import pytest

from symlstm.config import from_dict

from conftest import tiny_raw

AWD = {"tie_weights": True, "dropout_embed": 0.1, "dropout_input": 0.2, "dropout_hidden": 0.2,
       "dropout_output": 0.3, "weight_dropout": 0.4, "num_layers": 2}


def test_the_pytorch_net_ties_drops_and_evaluates_without_dropout():
    torch = pytest.importorskip("torch")
    from symlstm.tools.torch_reference import _net

    raw = tiny_raw()
    raw["model"].update(AWD)
    cfg = from_dict(raw)
    torch.manual_seed(0)
    net = _net(torch, 30, cfg)
    assert net.out.weight is net.emb.weight and net.proj.weight.shape == (8, 16)  # tied, projected H 16 -> E 8
    x = torch.randint(0, 30, (5, 3))
    a, b = net(x), net(x)
    assert not torch.equal(a, b)  # fresh masks per call (per batch)
    net.eval()
    assert torch.equal(net(x), net(x))
    (net(x).sum()).backward()  # the masked weight_hh reaches the real parameter's gradient
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("embedding", [True, False])
def test_the_pytorch_run_follows_the_schedule_and_weight_decay(small_corpus, monkeypatch, embedding):
    torch = pytest.importorskip("torch")
    from symlstm.tools import torch_reference

    raw = tiny_raw(max_steps=4, eval_every=2, schedule="linear", learning_rate=0.01, weight_decay=0.1,
                   decay_embedding=embedding)
    raw["model"].update(AWD)
    cfg = from_dict(raw)
    rates, decayed = [], {}
    real_step = torch.optim.AdamW.step

    def step(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        decayed.update({id(p): g["weight_decay"] for g in self.param_groups for p in g["params"]})
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    out = torch_reference.train_reference(cfg, small_corpus, log=lambda *_: None)
    assert out["steps"] == 4 and np.isfinite(out["test_perplexity"])
    assert rates == pytest.approx([0.01, 0.0075, 0.005, 0.0025])  # linear to zero over max_steps
    net_params = {id(p): n for n, p in torch_reference._last_net.named_parameters()}
    assert {net_params[i]: d for i, d in decayed.items()} == {
        n: (0.0 if n.startswith("layers.") and "bias" in n or n == "out.bias" or n == "emb.weight" and not embedding
            else 0.1) for n in net_params.values()}



def test_the_pytorch_run_validates_and_tests_the_weight_average(small_corpus, monkeypatch):
    """With train.ema the net that is validated, kept as the best and tested is the average of the
    weights after each step, avg ← β_t avg + (1 - β_t) w, β_t = min(β, (1 + t) / (10 + t)), from the
    initial weights: computed here from the weights each step leaves."""
    torch = pytest.importorskip("torch")
    from symlstm.tools import torch_reference

    cfg = from_dict(tiny_raw(max_steps=12, eval_every=12, ema=0.5))  # β_t reaches 0.5 at t = 8
    seen, real_recipe = [], torch_reference.recipe

    def recipe(*args, **kwargs):
        net, step, average = real_recipe(*args, **kwargs)
        weights = lambda: [p.detach().clone().double() for p in net.parameters()]  # noqa: E731
        seen.append(weights())

        def stepped(*a):
            loss = step(*a)
            seen.append(weights())
            return loss
        return net, stepped, average
    monkeypatch.setattr(torch_reference, "recipe", recipe)
    torch_reference.train_reference(cfg, small_corpus, log=lambda *_: None)
    average = seen[0]
    for t, weights in enumerate(seen[1:]):
        beta = min(0.5, (1 + t) / (10 + t))
        average = [beta * a + (1 - beta) * w for a, w in zip(average, weights)]
    tested = [p.detach().double() for p in torch_reference._last_net.parameters()]  # the one validation's best
    assert len(seen) == 13
    for a, p in zip(average, tested):
        torch.testing.assert_close(p, a, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(tested[0], seen[-1][0], atol=1e-4)
