"""`symlstm bench --torch-train CONFIG`: the same recipe trained in PyTorch, for the README's
reference row. Benchmark only: PyTorch stays optional, and nothing else imports this module.

The same corpus, split and vocabulary (`corpus.build_corpus`), the same batches in the same order
(`train.epoch_batches`: length-sorted pools, masked padding, zero initial states), the same model
(embedding, L LSTM layers, dropout on each layer's output, linear or tied output layer), Adam (AdamW
with `train.weight_decay`, on the same parameters) with the same rate, betas and epsilon, the same
schedule (`optim.learning_rate`), the same global-norm clip, the same weight average (`train.ema`,
validated and tested in its place), the same step-time budget and validation schedule, the best
validation checkpoint scored on the test split with the same token count. nn.LSTM is the one cell.
Layers and initialisation are PyTorch's own (`nn.Embedding`, `nn.LSTM`, `nn.Linear`), as a PyTorch
user would write them; `autocast` bf16 with `--bf16`. The regularisers as AWD-LSTM writes them:
embedding dropout on the weight's rows, locked dropout masks of shape (1, B, ·), weight dropout
through `torch.func.functional_call` on a masked `weight_hh_l0`, tying by sharing the Parameter.
Masks come from PyTorch's generator, not symlstm's: the same distributions, other draws.
"""
import contextlib
import math
import time

_last_net = None
from pathlib import Path

import numpy as np

from symlstm.config import Config
from symlstm.core.optim import decays, learning_rate
from symlstm.corpus.loading import build_corpus
from symlstm.errors import InputError
from symlstm.run.train import epoch_batches


def _net(torch, V, cfg):
    m = cfg.model
    F = torch.nn.functional

    def locked(h, p):  # one mask per sequence and unit, the same at every step
        if not net.training or p == 0:
            return h
        return h * h.new_empty((1,) + h.shape[1:]).bernoulli_(1 - p) / (1 - p)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, m.embedding)
            self.layers = torch.nn.ModuleList(torch.nn.LSTM(m.embedding if l == 0 else m.hidden, m.hidden)
                                              for l in range(m.num_layers))
            self.drop = torch.nn.Dropout(m.dropout)
            self.proj = torch.nn.Linear(m.hidden, m.embedding, bias=False) \
                if m.tie_weights and m.hidden != m.embedding else None
            self.out = torch.nn.Linear(m.embedding if m.tie_weights else m.hidden, V)
            if m.tie_weights:
                self.out.weight = self.emb.weight

        def forward(self, x):
            w = self.emb.weight
            if self.training and m.dropout_embed > 0:  # whole rows of the embedding
                w = w * w.new_empty((V, 1)).bernoulli_(1 - m.dropout_embed) / (1 - m.dropout_embed)
            h = locked(F.embedding(x, w), m.dropout_input)
            for l, layer in enumerate(self.layers):
                if self.training and m.weight_dropout > 0:  # DropConnect on weight_hh, one mask per batch
                    u = layer.weight_hh_l0
                    mask = u.new_empty(u.shape).bernoulli_(1 - m.weight_dropout) / (1 - m.weight_dropout)
                    weights = dict(layer.named_parameters(), weight_hh_l0=u * mask)
                    h = torch.func.functional_call(layer, weights, (h,))[0]
                else:
                    h = layer(h)[0]
                h = locked(self.drop(h), m.dropout_output if l == m.num_layers - 1 else m.dropout_hidden)
            return self.out(h if self.proj is None else self.proj(h))

    net = Net()
    return net


def _nll(torch, net, x, y, mask):
    logits = net(torch.from_numpy(x.astype(np.int64)))
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                            torch.from_numpy(y.astype(np.int64)).reshape(-1), reduction="none")
    m = torch.from_numpy(mask).reshape(-1)
    return (nll * m).sum(), m.sum()


def _evaluate(torch, net, seqs, batch_size, dtype) -> float:
    from symlstm.corpus.batching import poem_batches
    net.eval()
    total = count = 0.0
    with torch.no_grad():
        for x, y, mask in poem_batches(seqs, batch_size, dtype=dtype):
            t, n = _nll(torch, net, x, y, mask)
            total, count = total + float(t), count + float(n)
    net.train()
    return total / count


def mean_loss(torch, net, x, y, mask, bf16: bool):
    """The batch's mean NLL per token, under autocast bf16 where asked: what a step differentiates."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        total, count = _nll(torch, net, x, y, mask)
        return total / count.clamp(min=1)


def recipe(torch, cfg: Config, V: int, bf16: bool = False):
    """PyTorch's side of the recipe: (net, step, average), where `step(x, y, mask, lr)` is one
    training step on a batch (AdamW on symlstm's parameter groups, global-norm clip, then with
    `train.ema` the weight average's update, as symlstm's compiled step makes it) and returns the
    loss as a tensor; `average` is that average (a tensor per `net.parameters()`), or None.
    `train_reference` trains with it and `make bench`'s main-job row times it."""
    t = cfg.train
    if cfg.model.cell != "lstm":
        raise InputError(f"model.cell {cfg.model.cell}: the PyTorch reference is the recipe on nn.LSTM, which "
                         "has no such cell; compare it at model.cell lstm")
    if t.init_from:
        raise InputError(f"train.init_from {t.init_from}: the PyTorch reference starts from PyTorch's own "
                         "initialisation and reads no symlstm checkpoint; compare the runs from scratch")
    net = _net(torch, V, cfg)
    names = {"emb.weight": "embedding", "out.weight": "output/W", "proj.weight": "output/proj"}
    groups = [{"params": [], "weight_decay": t.weight_decay}, {"params": [], "weight_decay": 0.0}]
    for name, p in net.named_parameters():  # symlstm's names decide: matrices decay, biases do not
        ours = names.get(name, "layer/W" if "weight" in name else "layer/b")
        groups[0 if decays(ours, t.decay_embedding) else 1]["params"].append(p)
    opt = torch.optim.AdamW(groups, lr=t.learning_rate, betas=(t.beta1, t.beta2), eps=t.eps)
    params = list(net.parameters())
    average = [p.detach().clone() for p in params] if t.ema else None  # `optim.average_updates`
    taken = [0]  # steps averaged so far

    def step(x, y, mask, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = mean_loss(torch, net, x, y, mask, bf16)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
        opt.step()
        if average is not None:  # avg ← β_t avg + (1 - β_t) p, β_t = min(β, (1 + t) / (10 + t))
            with torch.no_grad():
                beta = min(t.ema, (1 + taken[0]) / (10 + taken[0]))
                torch._foreach_lerp_(average, [p.detach() for p in params], 1 - beta)
            taken[0] += 1
        return loss
    return net, step, average


@contextlib.contextmanager
def _averaged(torch, params, average):
    """Within the block the net's parameters hold the weight average (none: unchanged)."""
    if average is None:
        yield
        return
    trained = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, a in zip(params, average):
            p.copy_(a)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, w in zip(params, trained):
                p.copy_(w)


def train_reference(cfg: Config, root=".", bf16: bool = False, log=print) -> dict:
    import torch

    torch.manual_seed(cfg.train.seed)
    corpus = build_corpus(cfg.data, Path(root))
    t = cfg.train
    global _last_net
    net, train_step, average = recipe(torch, cfg, len(corpus.vocab), bf16)
    _last_net = net  # for the tests
    first = epoch_batches(cfg, corpus, 0)
    step_limit = t.max_steps or t.max_epochs * len(first)
    elapsed, step, epoch, best, best_state = 0.0, 0, 0, math.inf, None
    params = list(net.parameters())
    while epoch < t.max_epochs and elapsed < (t.time_budget or math.inf) and step < (t.max_steps or math.inf):
        for x, y, mask in (first if epoch == 0 else epoch_batches(cfg, corpus, epoch)):
            start = time.perf_counter()
            loss = train_step(x, y, mask, learning_rate(t, step, epoch, step_limit, elapsed))
            elapsed += time.perf_counter() - start
            step += 1
            done = (t.time_budget and elapsed >= t.time_budget) or step == t.max_steps
            if step % t.eval_every == 0 or done:
                with _averaged(torch, params, average):  # validation and the best state: the average
                    valid = _evaluate(torch, net, corpus.splits["valid"], cfg.data.batch_size, cfg.model.dtype)
                    if valid < best:
                        best, best_state = valid, {k: v.clone() for k, v in net.state_dict().items()}
                log(f"step {step:6d} | epoch {epoch} | train {loss.item():.4f} | valid ppl {math.exp(valid):8.2f} | "
                    f"{elapsed:6.1f} s")
            if done:
                break
        epoch += 1
    net.load_state_dict(best_state)
    test = _evaluate(torch, net, corpus.splits["test"], cfg.data.batch_size, cfg.model.dtype)
    return {"steps": step, "epochs": epoch, "elapsed_sec": elapsed, "valid_perplexity": math.exp(best),
            "test_perplexity": math.exp(test), "bf16": bf16, "torch": torch.__version__}
