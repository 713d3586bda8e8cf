"""Gradient flow across time: ‖∂L_T/∂h_k‖ (and ‖∂L_T/∂c_k‖ for the LSTM) against the distance T-1-k.

A scan output's symbolic gradient only counts its use outside the loop, so to get the total
derivative with respect to the state at step k we add a zero "probe" sequence to the top layer's
states inside the step, h_k ← h_k + δh_k, and differentiate with respect to δh_k. L_T is the NLL
of the last target. Owns that graph and the summary (norms at chosen distances, fitted decay).
"""
import dataclasses

import numpy as np
import pytensor
import pytensor.tensor as pt

from symlstm.backend.runtime import get_mode
from symlstm.config import ModelConfig, from_dict
from symlstm.core import model as M
from symlstm.core.cells import CELLS, STEPS, gate_columns
from symlstm.corpus.batching import flat
from symlstm.corpus.loading import CorpusError, load_corpus
from symlstm.errors import InputError
from symlstm.run import checkpoint as ckpt_io


def _probed_top_layer(params, cfg: ModelConfig, x, h0, c0, probe_h, probe_c):
    """Embedding and lower layers as usual; the top layer's step adds the probes to its states.
    Returns the top states (T, B, H), the top layer's input projection (T, B, G*H), the state
    entering each step (T, B, H) and U."""
    ones = pt.ones(x.shape, dtype=cfg.dtype)  # (T, B): no padding here
    emb = params["embedding"][x]  # (T, B, E)
    top = cfg.num_layers - 1
    if top > 0:
        lower = dataclasses.replace(cfg, num_layers=top)
        emb, _, _ = M.recurrent_stack(params, lower, emb, ones, h0[:top], c0[:top])
    W, U, b = (params[f"layer{top}/{k}"] for k in "WUb")
    xw = pt.dot(emb, W) + b  # (T, B, G*H)
    step = STEPS[cfg.cell]

    def probed_step(xw_t, mask_t, dh_t, dc_t, h_tm1, c_tm1, U):
        h, c = step(xw_t, mask_t, h_tm1, c_tm1, pt.dot(h_tm1, U))
        return h + dh_t, c + dc_t

    hs, cs = pytensor.scan(probed_step, sequences=[xw, ones, probe_h, probe_c], outputs_info=[h0[top], c0[top]],
                           non_sequences=[U], strict=True, name="probed", return_updates=False)
    h_prev = pt.concatenate([h0[top][None], hs[:-1]], axis=0)  # (T, B, H): state entering each step
    return hs, xw, h_prev, U


def build_gradflow_fn(params, cfg: ModelConfig, T: int, B: int):
    """(x (T, B), y (T, B)) -> (‖∂L_T/∂h_k‖ (T, B), ‖∂L_T/∂c_k‖ (T, B), L_T, mean forget gate).
    Shapes are static (JAX compiles for them; the other backends do not mind)."""
    x = pt.tensor("x", dtype="int32", shape=(T, B))
    y = pt.tensor("y", dtype="int32", shape=(T, B))
    probe_h = pt.tensor("probe_h", dtype=cfg.dtype, shape=(T, B, cfg.hidden))
    probe_c = pt.tensor("probe_c", dtype=cfg.dtype, shape=(T, B, cfg.hidden))
    h0 = pt.zeros((cfg.num_layers, B, cfg.hidden), dtype=cfg.dtype)
    hs, xw, h_prev, U = _probed_top_layer(params, cfg, x, h0, h0, probe_h, probe_c)
    logits = M.output_logits(params, cfg, hs[-1])  # (B, V): the last step only
    loss_T = M.token_nll(logits, y[-1]).mean()
    g_h, g_c = pytensor.grad(loss_T, [probe_h, probe_c], disconnected_inputs="ignore")  # (T, B, H) each
    if cfg.cell == "lstm":
        f = gate_columns("lstm", "f", cfg.hidden)
        forget = pt.sigmoid(xw[..., f] + pt.dot(h_prev, U[:, f])).mean()
    else:
        forget = pt.constant(np.nan, dtype=cfg.dtype)
    fn = pytensor.function([x, y, probe_h, probe_c],
                           [pt.sqrt((g_h ** 2).sum(-1)), pt.sqrt((g_c ** 2).sum(-1)), loss_T, forget],
                           mode=get_mode(cfg.backend), name="gradflow", on_unused_input="ignore")
    zeros = np.zeros((T, B, cfg.hidden), cfg.dtype)
    return lambda xx, yy: fn(xx, yy, zeros, zeros)


def gradient_flow(params: dict, cfg: ModelConfig, x: np.ndarray, y: np.ndarray) -> dict:
    """Mean over the batch of ‖∂L_T/∂h_k‖ and ‖∂L_T/∂c_k‖, indexed by distance d = T-1-k.
    params: name -> NumPy array; x, y (T, B) token ids."""
    fn = build_gradflow_fn({k: pt.constant(v) for k, v in params.items()}, cfg, *x.shape)
    norm_h, norm_c, loss, forget = fn(x.astype(np.int32), y.astype(np.int32))
    norm_h, norm_c = np.asarray(norm_h).mean(axis=1)[::-1], np.asarray(norm_c).mean(axis=1)[::-1]
    out = {"cell": cfg.cell, "distance": np.arange(len(norm_h)), "grad_h": norm_h, "loss_T": float(loss),
           "decay_per_step": decay_factor(norm_h), "forget_gate_mean": float(forget)}
    if cfg.cell == "lstm":
        out["grad_c"] = norm_c
    return out


def decay_factor(norms: np.ndarray) -> float:
    """Per-step factor ρ of a least-squares fit log‖g_d‖ = a + d log ρ over the finite, nonzero norms."""
    d = np.arange(len(norms))
    ok = np.isfinite(norms) & (norms > 0)
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(d[ok], np.log(norms[ok]), 1)[0]
    return float(np.exp(slope))


def summary_row(result: dict, distances=(1, 10, 50, 100)) -> dict:
    g = result["grad_h"]
    row = {"cell": result["cell"]}
    for d in distances:
        row[f"d{d}"] = float(g[d]) if d < len(g) else float("nan")
    row["decay_per_step"] = result["decay_per_step"]
    row["forget_gate_mean"] = result["forget_gate_mean"]
    return row


def write_csv(results: list[dict], path):
    """Columns: cell, distance, grad_h_norm, grad_c_norm (empty for cells without a cell state)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("cell,distance,grad_h_norm,grad_c_norm\n")
        for r in results:
            for d in r["distance"]:
                gc = f"{r['grad_c'][d]:.6e}" if "grad_c" in r else ""
                f.write(f"{r['label'] if 'label' in r else r['cell']},{d},{r['grad_h'][d]:.6e},{gc}\n")


def plot(results: list[dict], path, title="gradient flow across time"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        label = r.get("label", r["cell"])
        positive = lambda g: np.where(g > 0, g, np.nan)  # c_T cannot reach L_T: its norm at d=0 is 0
        ax.semilogy(r["distance"], positive(r["grad_h"]), label=f"{label}: ‖∂L_T/∂h_k‖")
        if "grad_c" in r:
            ax.semilogy(r["distance"], positive(r["grad_c"]), "--", label=f"{label}: ‖∂L_T/∂c_k‖")
    ax.set_xlabel("distance T-1-k (steps back from the loss)")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def corpus_windows(seqs, length: int, batch: int, seed: int = 0):
    """x, y (length, batch): windows of the concatenated encoded poems at seeded random offsets."""
    stream = flat(seqs)
    if len(stream) <= length + 1:
        raise InputError(f"the corpus stream ({len(stream)} tokens) is shorter than --length {length}")
    starts = np.random.default_rng(seed).integers(0, len(stream) - length - 1, batch)
    x = np.stack([stream[s:s + length] for s in starts], axis=1)
    y = np.stack([stream[s + 1:s + length + 1] for s in starts], axis=1)
    return x.astype(np.int32), y.astype(np.int32)


def prepare(cfg, root, checkpoint: str | None = None, cells=("rnn", "gru", "lstm"), random: bool = False,
            length: int = 101, batch: int = 16, seed: int = 0):
    """What `symlstm gradflow` measures: ([(label, ModelConfig, params)], x, y). With a checkpoint,
    its trained model (and its config, `cfg` ignored); else fresh models of each cell in `cells`
    with cfg's sizes. x, y (length, batch) come from the config's training split, or are random ids."""
    if not (2 <= length <= 10000 and 1 <= batch <= 1024):
        raise InputError(f"--length {length} --batch {batch}: the flow needs 2 to 10000 steps (distances 0 … "
                         "length-1) and 1 to 1024 rows")
    if not 0 <= seed < 2 ** 32:
        raise InputError(f"--seed must be between 0 and 2**32 - 1, got {seed}")
    unknown = [c for c in cells if c not in STEPS]
    if unknown and not checkpoint:
        what = "is a cell whose step the probe does not take apart" if unknown[0] in CELLS else "is not a cell"
        raise InputError(f"--cells {','.join(cells)}: {unknown[0]!r} {what}; choose among {', '.join(STEPS)}")
    state = ckpt_io.load(checkpoint) if checkpoint else None
    if state:
        cfg = from_dict(state.config, source=checkpoint)
        if cfg.model.cell not in STEPS:
            raise InputError(f"{checkpoint}: a {cfg.model.cell} model; the gradient-flow probe takes apart the steps "
                             f"of {', '.join(STEPS)} only")
    if random:
        vocab_size = len(state.vocab) if state else 200
        x, y = random_windows(vocab_size, length, batch, seed)
    else:
        corpus = load_corpus(cfg.data, root)
        if state and corpus.vocab.itos != state.vocab:
            raise CorpusError(f"{cfg.data.path}: the corpus vocabulary differs from the checkpoint's; use --random")
        vocab_size = len(corpus.vocab)
        x, y = corpus_windows(corpus.splits["train"], length, batch, seed)
    if state:
        return [(f"trained {cfg.model.cell}", cfg.model, state.params)], x, y
    models = []
    for cell in cells:
        mcfg = dataclasses.replace(cfg.model, cell=cell, dropout=0.0)
        models.append((f"untrained {cell}", mcfg, M.init_params(vocab_size, mcfg, seed)))
    return models, x, y


def random_windows(vocab_size: int, length: int, batch: int, seed: int = 0):
    """x, y (length, batch): seeded random character ids (no special tokens)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(4, vocab_size, (length, batch)).astype(np.int32) for _ in range(2))
