"""Training through oneDNN's fused LSTM (`model.onednn_lstm`): the LSTM layer as the primitive
PyTorch runs for `nn.LSTM` on CPU, in the PyTensor graph as two Ops with JAX implementations only.

`OneDNNLSTM` is one layer over all steps: x (T, B, E), W, U, b, h0, c0 -> hs (T, B, H), hT, cT and
the workspace (bytes) in which the primitive saves its gates; its gradient is `OneDNNLSTMGrad`,
oneDNN's backward primitive, which reads that workspace, so nothing of the forward is recomputed
and ∂W, ∂U, ∂b come out of the primitive as products over all steps (`backend/onednn`).

`substitute(outputs)` puts the Op in place of each LSTM scan of `model.recurrent_stack` (found as
`lstm_layer.substitute` finds them) whose input projection is `dot(x, W) + b` and whose cell states
are read only at the last step (as `model.py` reads them). The primitive has no mask: a row padded
at its end runs on through its padding, which changes nothing a masked loss reads (its real steps
come first) but leaves that row's hT, cT at the padded end, not at its last real step;
`CompiledModel.train_step` therefore takes only masks whose rows are 1s then 0s on this path.
"""
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply, equal_computations
from pytensor.graph.op import Op
from pytensor.graph.traversal import io_toposort
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.math import Dot
from pytensor.tensor.subtensor import Subtensor

from symlstm.backend import onednn
from symlstm.backend.runtime import on_jax
from symlstm.core import lstm_layer
from symlstm.core.precision import Bf16Dot


class OneDNNLSTM(Op):
    """(x, W, U, b, h0, c0) -> (hs, hT, cT, workspace) by oneDNN's LSTM primitive; JAX backend only."""

    __props__ = ("bf16",)

    def __init__(self, bf16: bool):
        self.bf16 = bool(bf16)

    def make_node(self, x, W, U, b, h0, c0):
        inputs = [pt.as_tensor_variable(v) for v in (x, W, U, b, h0, c0)]
        if any(v.dtype != "float32" for v in inputs) or [v.ndim for v in inputs] != [3, 2, 2, 1, 2, 2]:
            raise TypeError(f"OneDNNLSTM takes float32 x (T, B, E), W, U, b, h0, c0, got {[v.type for v in inputs]}")
        (T, B, E), H = inputs[0].type.shape, inputs[4].type.shape[1]
        if None in (T, B, E, H):
            raise TypeError("OneDNNLSTM needs static shapes (the JAX backend's): the workspace's size depends on them")
        out = [pt.tensor(dtype="float32", shape=(T, B, H)), pt.tensor(dtype="float32", shape=(B, H)),
               pt.tensor(dtype="float32", shape=(B, H)),
               pt.tensor(dtype="uint8", shape=(onednn.workspace_bytes(T, B, E, H, self.bf16),))]
        return Apply(self, inputs, out)

    def infer_shape(self, fgraph, node, shapes):
        return [o.type.shape for o in node.outputs]

    def perform(self, node, inputs, outputs):
        raise NotImplementedError("OneDNNLSTM runs on the JAX backend only (model.onednn_lstm)")

    def pullback(self, inputs, outputs, output_grads):
        d = [pt.zeros_like(o) if isinstance(g.type, DisconnectedType) else g
             for o, g in zip(outputs[:3], output_grads[:3])]  # of hs, hT, cT; the workspace has none
        return OneDNNLSTMGrad(self.bf16)(*inputs, *outputs, *d)

    def connection_pattern(self, node):
        return [[True, True, True, False] for _ in node.inputs]


class OneDNNLSTMGrad(Op):
    """(x, W, U, b, h0, c0, hs, hT, cT, workspace, ∂hs, ∂hT, ∂cT) -> ∂(x, W, U, b, h0, c0)."""

    __props__ = ("bf16",)

    def __init__(self, bf16: bool):
        self.bf16 = bool(bf16)

    def make_node(self, *args):
        args = [pt.as_tensor_variable(v) for v in args]
        return Apply(self, args, [v.type() for v in args[:6]])

    def infer_shape(self, fgraph, node, shapes):
        return shapes[:6]

    def perform(self, node, inputs, outputs):
        raise NotImplementedError("OneDNNLSTMGrad runs on the JAX backend only (model.onednn_lstm)")


@on_jax
def register_jax():
    """The two Ops as the custom calls of `backend/onednn` (called when the JAX backend is set up)."""
    from pytensor.link.jax.dispatch import jax_funcify

    @jax_funcify.register(OneDNNLSTM)
    def _forward(op, **kwargs):
        return lambda *args: onednn.forward(op.bf16, *args)

    @jax_funcify.register(OneDNNLSTMGrad)
    def _backward(op, **kwargs):
        return lambda *args: onednn.backward(op.bf16, *args)


# -- the rewrite -------------------------------------------------------------------------------
def _projection(xw, product):
    """(x, W, b) where xw, the scan's sequence, is `dot(x, W) + b` for the product's dot (as scan
    takes it: sliced to its steps, which are all of them), else None."""
    xw = _unsliced(xw)
    node = xw.owner
    if node is None or not isinstance(node.op, Elemwise) or len(node.inputs) != 2:
        return None
    for prod, bias in (node.inputs, node.inputs[::-1]):
        if bias.owner is None or not isinstance(bias.owner.op, DimShuffle) or bias.owner.inputs[0].ndim != 1:
            continue
        b, inner = bias.owner.inputs[0], prod
        while inner.owner is not None and not isinstance(inner.owner.op, (Dot, Bf16Dot)):
            if not inner.owner.inputs:
                break
            inner = inner.owner.inputs[0]  # down through the reshapes around a 3-D product
        if inner.owner is None or not inner.owner.inputs:
            continue
        rows, W = inner.owner.inputs
        x = rows.owner.inputs[0] if rows.owner is not None and rows.ndim == 2 and rows.owner.inputs else rows
        if x.ndim == 3 and equal_computations([xw], [lstm_layer.PRODUCTS[product][0](x, W) + b]):
            return x, W, b
    return None


def _unsliced(seq):
    """A scan's sequence as given to it, before scan sliced it to its steps (all of them)."""
    while seq.owner is not None and isinstance(seq.owner.op, Subtensor) and \
            all(isinstance(i, slice) for i in seq.owner.op.idx_list):
        seq = seq.owner.inputs[0]
    return seq


def _last_step(client) -> bool:
    """Whether `client` reads only the last step of a sequence: seq[-1]."""
    if not isinstance(client.op, Subtensor) or len(client.op.idx_list) != 1 or len(client.inputs) != 2:
        return False
    index = client.inputs[1]
    return getattr(index, "data", None) is not None and int(index.data) == -1


def with_onednn(node, product, clients, h0, c0) -> dict | None:
    """The replacements that compute one LSTM scan by oneDNN's primitive, or None where it cannot:
    a product other than float32 or bf16, an input projection of another form, or cell states read
    anywhere but at the last step."""
    if product not in ("float", "bf16") or node.inputs[1].dtype != "float32":
        return None
    _, xw, _, _, _, _, U = node.inputs
    found = _projection(xw, product)
    if found is None:
        return None
    tails = {b: [c for c in clients.get(b, []) if lstm_layer.is_tail(c)] for b in node.outputs[:2]}
    if any(len(tails[b]) != len(clients.get(b, [])) for b in node.outputs[:2]):
        return None  # a buffer read whole (with its initial state)
    if not all(_last_step(r) for t in tails[node.outputs[1]] for r in clients.get(t.outputs[0], [])):
        return None
    x, W, b = found
    T, B = _unsliced(node.inputs[2]).type.shape  # the mask's: a layer above the first gets x of unknown T
    if None in (T, B) + W.type.shape + U.type.shape:
        return None  # shapes known only when run: not on the JAX backend, which compiles per shape
    x = pt.specify_shape(x, (T, B, W.type.shape[0]))
    h0, c0 = (pt.specify_shape(v, (B, U.type.shape[0])) for v in (h0, c0))
    hs, _, cT, _ = OneDNNLSTM(product == "bf16")(x, W, U, b, h0, c0)
    replace = {t.outputs[0]: hs for t in tails[node.outputs[0]]}
    for t in tails[node.outputs[1]]:
        replace.update({r.outputs[0]: cT for r in clients.get(t.outputs[0], [])})
    return replace


def substitute(outputs: list) -> list:
    """`outputs` with every LSTM scan that oneDNN's primitive can compute computed by it."""
    return lstm_layer.substitute(outputs, with_onednn)


def count(outputs: list) -> int:
    """How many oneDNN LSTM layers the graph of `outputs` holds."""
    return sum(isinstance(n.op, OneDNNLSTM) for n in io_toposort([], outputs))


def suffix_padded(mask: np.ndarray) -> bool:
    """Whether every row of a (T, B) mask is 1s then 0s (the primitive's only kind of padding)."""
    return bool(np.all(mask[1:] <= mask[:-1]))
