"""Recurrent cells as pure symbolic step functions, for `pytensor.scan`.

Each step takes the precomputed input projection of one time step, the mask of that step, the
previous states and the recurrent term h_{t-1} U (made by the caller: see `model.carrying_step`),
and returns the new states. Padded steps (mask 0) leave h and c unchanged, as in the Theano LSTM
tutorial. Every cell carries a (B, H) `cell` state so that the scan signature is
the same for all of them; only the LSTM changes it.

Shapes (row vectors): xw_t and hu_tm1 (B, G*H), mask_t (B,), h_tm1 and c_tm1 (B, H). The
Mogrifier LSTM (`mogrifier_step`) is the exception: its input is gated by the state before its
product, so it takes x_t itself and its weights.
"""
import pytensor.tensor as pt

from symlstm.config import choices

# The one home of the gate layout: each cell's gate blocks, in the order they sit in the columns
# of W, U and b (block k is columns k*H … (k+1)*H - 1). Initialisation (the forget-gate bias) and
# gradient flow (the mean forget gate) find a gate's columns through `gate_columns`.
GATE_LAYOUT = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("h",), "mogrifier": ("i", "f", "g", "o")}
GATES = {cell: len(blocks) for cell, blocks in GATE_LAYOUT.items()}  # G, blocks per cell


def gate_columns(cell: str, gate: str, H: int) -> slice:
    """The columns of W, U and b that feed `gate` of `cell`, e.g. the LSTM forget gate: H … 2H-1."""
    k = GATE_LAYOUT[cell].index(gate)
    return slice(k * H, (k + 1) * H)


def _blocks(z, n, h):
    """Split (B, n*H) pre-activations into n (B, H) gate blocks. A Split, not n slices: its
    gradient is one Join, where n slices gave n IncSubtensors into a zero matrix inside the
    gradient scan (faster training steps at both shapes of `make bench`: docs/measurements.md,
    "split gates")."""
    H = h.shape[-1]
    return pt.split(z, [H] * n, n_splits=n, axis=1)


def _keep(mask_t, new, old):
    m = mask_t[:, None]  # (B, 1)
    return m * new + (1 - m) * old


def lstm_cell(xw_t, mask_t, h_tm1, c_tm1, hu_tm1):
    """LSTM (Hochreiter & Schmidhuber 1997, with forget gate), gate blocks i, f, g, o:

        z_t = x_t W + h_{t-1} U + b
        i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    This is PyTorch's nn.LSTM with weight_ih = Wᵀ, weight_hh = Uᵀ, bias_ih = b, bias_hh = 0.
    Returns h_t, c_t and the gate values (i, f, g, o), which the LSTM layer Op saves for its
    backward pass (`lstm_layer.py`); the scan step is `lstm_step`.
    """
    z = xw_t + hu_tm1  # (B, 4H): x_t W + b, plus h_{t-1} U
    z_i, z_f, z_g, z_o = _blocks(z, 4, h_tm1)  # (B, H) each
    input_gate = pt.sigmoid(z_i)
    forget_gate = pt.sigmoid(z_f)
    candidate = pt.tanh(z_g)
    output_gate = pt.sigmoid(z_o)
    cell = forget_gate * c_tm1 + input_gate * candidate  # (B, H)
    hidden = output_gate * pt.tanh(cell)  # (B, H)
    gates = (input_gate, forget_gate, candidate, output_gate)
    return _keep(mask_t, hidden, h_tm1), _keep(mask_t, cell, c_tm1), gates


def lstm_step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1):
    """The LSTM step of `lstm_cell`: (h_t, c_t)."""
    h_t, c_t, _ = lstm_cell(xw_t, mask_t, h_tm1, c_tm1, hu_tm1)
    return h_t, c_t


def gru_step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1):
    """GRU (Cho et al. 2014), gate blocks r, z, n, as PyTorch's nn.GRU with bias_hh = 0:

        r = σ(x W_r + h U_r + b_r)   z = σ(x W_z + h U_z + b_z)
        n = tanh(x W_n + b_n + r ⊙ (h U_n))
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
    """
    x_r, x_z, x_n = _blocks(xw_t, 3, h_tm1)  # (B, H) each: x W + b
    h_r, h_z, h_n = _blocks(hu_tm1, 3, h_tm1)  # (B, H) each: h_{t-1} U
    reset_gate = pt.sigmoid(x_r + h_r)
    update_gate = pt.sigmoid(x_z + h_z)
    candidate = pt.tanh(x_n + reset_gate * h_n)
    hidden = (1 - update_gate) * candidate + update_gate * h_tm1  # (B, H)
    return _keep(mask_t, hidden, h_tm1), c_tm1


def rnn_step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1):
    """Elman RNN: h_t = tanh(x_t W + h_{t-1} U + b)."""
    hidden = pt.tanh(xw_t + hu_tm1)  # (B, H)
    return _keep(mask_t, hidden, h_tm1), c_tm1


def mogrifier_names(layer: int, rounds: int) -> list[str]:
    """The names of layer `layer`'s mogrifier matrices in round order: layer{l}/Q1, R2, Q3, … (Q in
    the odd rounds, R in the even ones: `mogrify`)."""
    return [f"layer{layer}/{'Q' if k % 2 else 'R'}{k}" for k in range(1, rounds + 1)]


def mogrifier_rounds(params, layer: int, rounds: int) -> list:
    """Layer `layer`'s mogrifier matrices in round order (`mogrifier_names`)."""
    return [params[name] for name in mogrifier_names(layer, rounds)]


def mogrify(x, h, rounds, dot=pt.dot):
    """The Mogrifier's rounds (Melis, Kočiský & Blunsom 2020, eq. 1–2): input and state gate each
    other in turn before the LSTM sees them, starting with the input (x⁻¹ = x, h⁰ = h_{t-1}):

        round k odd:   x^k = 2σ(h^{k-1} Q_k) ⊙ x^{k-2}       Q_k (H, n_in)
        round k even:  h^k = 2σ(x^{k-1} R_k) ⊙ h^{k-2}       R_k (n_in, H)

    2σ(0) = 1: with small Q and R the rounds start near the identity. Returns the last (x, h)."""
    for k, M in enumerate(rounds, start=1):
        if k % 2:
            x = 2 * pt.sigmoid(dot(h, M)) * x  # (B, n_in)
        else:
            h = 2 * pt.sigmoid(dot(x, M)) * h  # (B, H)
    return x, h


def mogrifier_step(x_t, mask_t, h_tm1, c_tm1, W, U, b, rounds, dot=pt.dot):
    """The Mogrifier LSTM step: `mogrify`, then the LSTM of `lstm_cell` on the gated pair,

        z_t = x↑ W + h↑ U + b

    Unlike the other cells it takes the layer's raw input x_t (B, n_in), not x_t W + b made for all
    steps at once: the input is gated by h_{t-1} first, so its product lives inside the step.
    Padded steps keep h_{t-1} and c_{t-1} as they were."""
    x, h = mogrify(x_t, h_tm1, rounds, dot)
    h_t, c_t, _ = lstm_cell(dot(x, W) + b, mask_t, h_tm1, c_tm1, dot(h, U))  # (B, H) each
    return h_t, c_t


STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}  # the cells of `model.carrying_step`
CELLS = (*STEPS, "mogrifier")  # and the one whose step takes the raw input: `mogrifier_step`
choices("model", "cell", CELLS)  # the one list of cell names
