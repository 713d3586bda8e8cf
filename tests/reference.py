"""Independent NumPy references for the tests: a plain loop over time, written from the equations
(not from symlstm's code), used to check the compiled graphs."""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def mogrify(x, h, rounds, mm=np.matmul):
    """Melis, Kočiský & Blunsom (2020), eq. 1–2, as row vectors: for i = 1 … r, odd i:
    x = 2σ(h Q^i) ⊙ x; even i: h = 2σ(x R^i) ⊙ h."""
    for i, M in enumerate(rounds, 1):
        if i % 2 == 1:
            x = 2 * sigmoid(mm(h, M)) * x
        else:
            h = 2 * sigmoid(mm(x, M)) * h
    return x, h


def cell_step(cell, x, h, c, W, U, b, mm=np.matmul, rounds=()):
    """mm: the matrix product (a bf16 reference passes one that rounds its factors first); rounds:
    the Mogrifier's matrices Q^1, R^2, … (cell "mogrifier": those rounds, then the LSTM)."""
    H = h.shape[-1]
    if cell == "mogrifier":
        x, h = mogrify(x, h, rounds, mm)
        cell = "lstm"
    if cell == "lstm":
        z = mm(x, W) + mm(h, U) + b
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        return o * np.tanh(c), c
    if cell == "gru":
        xw, hu = mm(x, W) + b, mm(h, U)
        r = sigmoid(xw[:, :H] + hu[:, :H])
        u = sigmoid(xw[:, H:2 * H] + hu[:, H:2 * H])
        n = np.tanh(xw[:, 2 * H:] + r * hu[:, 2 * H:])
        return (1 - u) * n + u * h, c
    return np.tanh(mm(x, W) + mm(h, U) + b), c


def forward(params, cell, num_layers, x, mask, h0, c0, mm=np.matmul, drop=None):
    """x (T, B) ids, mask (T, B) -> log-probs (T, B, V), hT, cT (L, B, H); padded steps keep state.

    Without output/W the output layer is tied: logits = (h P) Eᵀ + b, P = output/proj if present.
    drop: multipliers, AWD-LSTM's dropouts written out per step: embed (V,) scales a character's
    row wherever it is looked up; input (B, E), hidden{l} and output (B, H) scale every step's
    vectors alike; U{l} (H, G*H) scales U at every step; keep{l} (T, B, H) is per step."""
    drop = drop or {}
    T, B = x.shape
    h, c = [h0[l].copy() for l in range(num_layers)], [c0[l].copy() for l in range(num_layers)]
    out = []
    for t in range(T):
        inp = params["embedding"][x[t]] * drop.get("embed", np.ones(len(params["embedding"])))[x[t]][:, None]
        inp = inp * drop.get("input", 1.0)
        m = mask[t][:, None]
        for l in range(num_layers):
            W, U, b = (params[f"layer{l}/{k}"] for k in "WUb")
            rounds, i = [], 1
            while f"layer{l}/{'QR'[(i + 1) % 2]}{i}" in params:  # Q1, R2, Q3, …
                rounds.append(params[f"layer{l}/{'QR'[(i + 1) % 2]}{i}"])
                i += 1
            hn, cn = cell_step(cell, inp, h[l], c[l], W, U * drop.get(f"U{l}", 1.0), b, mm, rounds)
            h[l] = m * hn + (1 - m) * h[l]
            c[l] = m * cn + (1 - m) * c[l]
            inp = h[l] * (drop[f"keep{l}"][t] if f"keep{l}" in drop else 1.0)
            inp = inp * drop.get("output" if l == num_layers - 1 else f"hidden{l}", 1.0)
        if "output/W" in params:
            logits = mm(inp, params["output/W"]) + params["output/b"]
        else:
            proj = mm(inp, params["output/proj"]) if "output/proj" in params else inp
            logits = mm(proj, params["embedding"].T) + params["output/b"]
        logits = logits - logits.max(-1, keepdims=True)
        out.append(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))
    return np.stack(out), np.stack(h), np.stack(c)


def nll_sum(params, cell, num_layers, x, y, mask, h0, c0, mm=np.matmul, drop=None):
    logp, hT, cT = forward(params, cell, num_layers, x, mask, h0, c0, mm, drop)
    T, B = y.shape
    picked = logp[np.arange(T)[:, None], np.arange(B)[None, :], y]
    return -(picked * mask).sum(), mask.sum(), hT, cT


def pingshui_table(path):
    """char -> set of tones (平/仄), char -> set of 平 rhyme groups, read from the 平水韻 JSON directly,
    without symlstm's lexicon."""
    import json

    table = json.loads(open(path, encoding="utf-8").read())
    tones, groups = {}, {}
    for key, tone in (("ping", "平"), ("ze", "仄")):
        for part in table[key].values():
            for group, strings in part.items():
                for ch in "".join(strings):
                    tones.setdefault(ch, set()).add(tone)
                    if tone == "平":
                        groups.setdefault(ch, set()).add(group)
    return tones, groups
