"""The LSTM layer as one Op with its own gradient, put in place of the plain scan by a graph rewrite.

`model.py` states the LSTM once, as a `pytensor.scan` over `cells.lstm_step`; `pytensor.grad` of
that scan is a second scan that runs the step's graph backwards. This module is what Theano's
fused RNN Ops were beside its scan: the same forward, and a backward written out by hand.

Forward (`lstm_layer_op`): the same scan over `cells.lstm_cell`, which also returns the gates it
computed, i f g o, stacked as (T, B, 4H). Backward (`_pullback`), a scan from t = T-1 down to 0 that
carries dh, dc (B, H), the gradients reaching h_t and c_t from later steps:

    Dh = ∂h_t + dh         Dc = ∂c_t + dc                  (∂: the gradient from outside, (B, H))
    c̃ = f ⊙ c_{t-1} + i ⊙ g        (the unmasked new cell, from the saved gates)
    dh̃ = m ⊙ Dh            do = dh̃ ⊙ tanh c̃
    dc̃ = m ⊙ Dc + dh̃ ⊙ o ⊙ (1 - tanh² c̃)
    dz = [dc̃ ⊙ g ⊙ i(1-i),  dc̃ ⊙ c_{t-1} ⊙ f(1-f),  dc̃ ⊙ i ⊙ (1-g²),  do ⊙ o(1-o)]    (B, 4H)
    dh ← dz Uᵀ + (1-m) ⊙ Dh         dc ← dc̃ ⊙ f + (1-m) ⊙ Dc

and after it, over all steps at once: ∂(xW + b) = dz (T, B, 4H), and ∂U = Σ_t h_{t-1}ᵀ dz_t as one
(H, T·B)×(T·B, 4H) product, h_{-1} = h0. The loop does only the elementwise work and one product per
step, with no sigmoid or tanh of the gates recomputed; autodiff's scan recomputes the gates from z
and, in bf16, keeps ∂U += h_{t-1}ᵀ dz_t inside the loop (PyTensor moves only a plain `Dot` out).

`substitute(outputs)` finds each scan of `model.recurrent_stack` whose step is the LSTM's (its inner
graph equal to a freshly built `carrying_step(lstm_step, dot)` for one of the three products) and
puts the Op in its place, before `pytensor.grad` is taken. Every dropout mask is applied outside the
scan, so masked, tied and several-layer models match the same pattern.
"""
import pytensor
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Constant, equal_computations
from pytensor.graph.null_type import NullType
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import io_toposort
from pytensor.scan.op import Scan
from pytensor.tensor.subtensor import IncSubtensor, Subtensor

from symlstm.core.cells import lstm_cell, lstm_step
from symlstm.core.model import carrying_step
from symlstm.core.precision import Bf16Dot, bf16_dot, reference_dot, round_to_bf16

# Each product of the model's graphs and the two products its gradient takes, as autodiff of that
# product would: (a·b, a·bᵀ, aᵀ·b). Bf16Dot's own pullback is the two flagged Bf16Dots; the float64
# reference of bf16 differentiates the exact product of rounded factors, so the incoming
# gradient itself is not rounded.
PRODUCTS = {
    "float": (pt.dot, lambda a, b: pt.dot(a, b.T), lambda a, b: pt.dot(a.T, b)),
    "bf16": (bf16_dot, Bf16Dot(transpose_b=True), Bf16Dot(transpose_a=True)),
    "bf16-reference": (reference_dot, lambda a, b: pt.dot(a, round_to_bf16(b).T),
                       lambda a, b: pt.dot(round_to_bf16(a).T, b)),
}


def _forward(xw, mask, h0, c0, U, dot):
    """The plain layer's scan, with the gates (T, B, 4H) as a fourth output."""
    def step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1, U):
        h_t, c_t, gates = lstm_cell(xw_t, mask_t, h_tm1, c_tm1, hu_tm1)
        return h_t, c_t, dot(h_t, U), pt.concatenate(gates, axis=1)  # (B, H), (B, H), (B, 4H), (B, 4H)

    hs, cs, _, gates = pytensor.scan(step, sequences=[xw, mask], outputs_info=[h0, c0, dot(h0, U), None],
                                     non_sequences=[U], strict=True, return_updates=False, name="lstm_layer")
    return hs, cs, gates  # (T, B, H), (T, B, H), (T, B, 4H)


def _pullback(product, inputs, outputs, cotangents):
    """∂ of (xw, mask, h0, c0, U) from the cotangents of (hs, cs, gates): the equations above."""
    _, nt, tn = PRODUCTS[product]
    xw, mask, h0, c0, U = inputs
    hs, cs, gates = outputs
    d_hs, d_cs = cotangents[:2]
    d_hs = pt.zeros_like(hs) if isinstance(d_hs.type, DisconnectedType) else d_hs
    # the loss reads only h: the cs are then not a sequence at all (one (B, H) read a step saved)
    outer_dc = [] if isinstance(d_cs.type, DisconnectedType) else [d_cs]
    c_prev = pt.concatenate([c0[None], cs[:-1]])  # (T, B, H): c_{t-1}
    h_prev = pt.concatenate([h0[None], hs[:-1]])  # (T, B, H): h_{t-1}

    def step(d_h_t, *rest):
        d_c_t, (gates_t, m_t, c_tm1, dh, dc, U) = (rest[0], rest[1:]) if outer_dc else (0, rest)
        i, f, g, o = pt.split(gates_t, [dh.shape[-1]] * 4, n_splits=4, axis=1)  # (B, H) each
        m = m_t[:, None]  # (B, 1)
        Dh, Dc = d_h_t + dh, d_c_t + dc
        tc = pt.tanh(f * c_tm1 + i * g)  # tanh c̃
        dh_new = m * Dh
        dc_new = m * Dc + dh_new * o * (1 - tc * tc)
        dz = pt.concatenate([dc_new * g * i * (1 - i), dc_new * c_tm1 * f * (1 - f), dc_new * i * (1 - g * g),
                             dh_new * tc * o * (1 - o)], axis=1)  # (B, 4H)
        return nt(dz, U) + (1 - m) * Dh, dc_new * f + (1 - m) * Dc, dz

    dh0, dc0, dz = pytensor.scan(step, sequences=[d_hs, *outer_dc, gates, mask, c_prev],
                                 outputs_info=[pt.zeros_like(h0), pt.zeros_like(c0), None], non_sequences=[U],
                                 go_backwards=True, strict=True, return_updates=False, name="lstm_layer_grad")
    dz = dz[::-1]  # (T, B, 4H), in time order
    rows = dz.shape[0] * dz.shape[1]
    dU = tn(h_prev.reshape((rows, h_prev.shape[2])), dz.reshape((rows, dz.shape[2])))  # (H, 4H): one product
    no_mask_gradient = NullType("the mask is data: the LSTM layer Op gives no gradient for it")()
    return [dz, no_mask_gradient, dh0[-1], dc0[-1], dU]


def lstm_layer_op(xw, mask, h0, c0, U, product: str = "float"):
    """(hs, cs) of one LSTM layer, xw (T, B, 4H) = x W + b, mask (T, B), h0, c0 (B, H), U (H, 4H),
    as the Op with the hand-written gradient. `product`: a key of PRODUCTS."""
    dummies = [v.type() for v in (xw, mask, h0, c0, U)]
    op = OpFromGraph(dummies, list(_forward(*dummies, PRODUCTS[product][0])), inline=True, name="LSTMLayer",
                     pullback=lambda i, o, g: _pullback(product, i, o, g))
    hs, cs, _ = op(xw, mask, h0, c0, U)
    return hs, cs


# -- the rewrite -------------------------------------------------------------------------------
def _initial(buffer):
    """The initial state a scan's buffer was made from: set_subtensor(empty[:1], x[None]) -> x."""
    node = buffer.owner
    if node is not None and isinstance(node.op, IncSubtensor) and node.op.set_instead_of_inc:
        value = node.inputs[1]
        if value.owner is not None and type(value.owner.op).__name__ == "DimShuffle" and value.ndim == 3:
            return value.owner.inputs[0]
    return buffer[0]


def _product_of(node):
    """The key of PRODUCTS whose `carrying_step(lstm_step, dot)` scan has node's inner graph, or None."""
    op = node.op
    if not isinstance(op, Scan) or op.info.n_seqs != 2 or op.info.sit_sot_in_slices != ((-1,),) * 3 or \
            op.info.n_non_seqs != 1 or op.info.n_nit_sot or op.info.mit_sot_in_slices or op.info.mit_mot_in_slices \
            or op.info.as_while or op.truncate_gradient != -1:
        return None
    xw, mask, U = node.inputs[1].type(), node.inputs[2].type(), node.inputs[6].type()
    h0, c0, hu0 = (v.type() for v in op.inner_inputs[2:5])
    for name, (dot, _, _) in PRODUCTS.items():
        try:
            out = pytensor.scan(carrying_step(lstm_step, dot), sequences=[xw, mask], outputs_info=[h0, c0, hu0],
                                non_sequences=[U], strict=True, return_updates=False)
        except TypeError:  # Bf16Dot takes float32 only
            continue
        canon = out[0].owner.inputs[0].owner
        if canon.op.info == op.info and equal_computations(op.inner_outputs, canon.op.inner_outputs,
                                                           op.inner_inputs, canon.op.inner_inputs):
            return name
    return None


def is_tail(node):
    """Whether node is buffer[1:], the step outputs of a scan buffer."""
    if not isinstance(node.op, Subtensor) or len(node.op.idx_list) != 1:
        return False
    s = node.op.idx_list[0]
    if not isinstance(s, slice) or s.stop is not None or s.step is not None or s.start is None:
        return False
    start = node.inputs[1]
    return isinstance(start, Constant) and int(start.data) == 1


def with_layer_op(node, product, clients, h0, c0) -> dict | None:
    """The replacements that compute one LSTM scan `node` by the LSTM layer Op."""
    _, xw, mask, _, _, _, U = node.inputs
    hs, cs = lstm_layer_op(xw, mask, h0, c0, U, product)
    replace = {}
    for buffer, first, seq in ((node.outputs[0], h0, hs), (node.outputs[1], c0, cs)):
        for client in clients.get(buffer, []):
            if is_tail(client):
                replace[client.outputs[0]] = seq
        if any(not is_tail(c) for c in clients.get(buffer, [])):
            replace[buffer] = pt.concatenate([first[None], seq])
    return replace


def _replace_one(outputs, replace_scan):
    """Rewrite the first LSTM scan of `outputs`' graph that `replace_scan` takes; (new outputs, whether
    one was). `replace_scan(node, product, clients, h0, c0)` returns the replacements, or None."""
    nodes = io_toposort([], outputs)
    clients = {}
    for n in nodes:
        for v in n.inputs:
            clients.setdefault(v, []).append(n)
    for node in nodes:
        product = _product_of(node)
        if product is None or clients.get(node.outputs[2]):
            continue
        _, _, _, h_buf, c_buf, hu_buf, U = node.inputs
        h0, c0 = _initial(h_buf), _initial(c_buf)
        if not equal_computations([_initial(hu_buf)], [PRODUCTS[product][0](h0, U)]):
            continue  # the carried product does not start from h0 U
        replace = replace_scan(node, product, clients, h0, c0)
        if replace:
            return graph_replace(outputs, replace=replace), True
    return outputs, False


def substitute(outputs: list, replace_scan=with_layer_op) -> list:
    """`outputs` with every LSTM layer scan of their graph computed by the LSTM layer Op (or as
    `replace_scan` says: `onednn_lstm` puts oneDNN's primitive there by the same search). One layer
    at a time: the next layer's scan reads the replaced layer's outputs."""
    outputs, replaced = list(outputs), True
    while replaced:
        outputs, replaced = _replace_one(outputs, replace_scan)
    return outputs


def count(outputs: list) -> int:
    """How many LSTM layer Ops the graph of `outputs` holds (the tests' and `symlstm graph`'s check
    that the rewrite fired)."""
    return sum(isinstance(n.op, OpFromGraph) and n.op.name == "LSTMLayer" for n in io_toposort([], outputs))
