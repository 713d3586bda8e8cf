"""`symlstm bench --torch-train CONFIG`: the same recipe trained in PyTorch, for the README's
reference row. Benchmark only: PyTorch stays optional, and nothing else imports this module.

The same corpus, split and vocabulary (`corpus.build_corpus`), the same batches in the same order
(`train.epoch_batches`: length-sorted pools, masked padding, zero initial states), the same model
(embedding, L LSTM layers, dropout on each layer's output, linear output layer), Adam with the same
rate, betas and epsilon, the same global-norm clip, the same step-time budget and validation
schedule, the best validation checkpoint scored on the test split with the same token count.
Layers and initialisation are PyTorch's own (`nn.Embedding`, `nn.LSTM`, `nn.Linear`), as a PyTorch
user would write them; `autocast` bf16 with `--bf16`.
"""
import math
import time
from pathlib import Path

import numpy as np

from symlstm.config import Config
from symlstm.corpus.loading import build_corpus
from symlstm.run.train import epoch_batches


def _net(torch, V, cfg):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            m = cfg.model
            self.emb = torch.nn.Embedding(V, m.embedding)
            self.layers = torch.nn.ModuleList(torch.nn.LSTM(m.embedding if l == 0 else m.hidden, m.hidden)
                                              for l in range(m.num_layers))
            self.drop = torch.nn.Dropout(m.dropout)
            self.out = torch.nn.Linear(m.hidden, V)

        def forward(self, x):
            h = self.emb(x)
            for layer in self.layers:
                h = self.drop(layer(h)[0])  # (T, B, H): dropout on each layer's output, as symlstm
            return self.out(h)
    return Net()


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


def train_reference(cfg: Config, root=".", bf16: bool = False, log=print) -> dict:
    import torch

    torch.manual_seed(cfg.train.seed)
    corpus = build_corpus(cfg.data, Path(root))
    t = cfg.train
    net = _net(torch, len(corpus.vocab), cfg)
    opt = torch.optim.Adam(net.parameters(), lr=t.learning_rate, betas=(t.beta1, t.beta2), eps=t.eps)
    elapsed, step, epoch, best, best_state = 0.0, 0, 0, math.inf, None
    while epoch < t.max_epochs and elapsed < (t.time_budget or math.inf):
        for x, y, mask in epoch_batches(cfg, corpus, epoch):
            start = time.perf_counter()
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                total, count = _nll(torch, net, x, y, mask)
                loss = total / count.clamp(min=1)
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), t.grad_clip)
            opt.step()
            elapsed += time.perf_counter() - start
            step += 1
            done = t.time_budget and elapsed >= t.time_budget
            if step % t.eval_every == 0 or done:
                valid = _evaluate(torch, net, corpus.splits["valid"], cfg.data.batch_size, cfg.model.dtype)
                log(f"step {step:6d} | epoch {epoch} | train {float(loss):.4f} | valid ppl {math.exp(valid):8.2f} | "
                    f"{elapsed:6.1f} s")
                if valid < best:
                    best, best_state = valid, {k: v.clone() for k, v in net.state_dict().items()}
            if done:
                break
        epoch += 1
    net.load_state_dict(best_state)
    test = _evaluate(torch, net, corpus.splits["test"], cfg.data.batch_size, cfg.model.dtype)
    return {"steps": step, "epochs": epoch, "elapsed_sec": elapsed, "valid_perplexity": math.exp(best),
            "test_perplexity": math.exp(test), "bf16": bf16, "torch": torch.__version__}
