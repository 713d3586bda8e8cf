"""A fused softmax cross-entropy Op: NLL of integer targets straight from logits.

PyTensor's own graph (log_softmax, then picking the target) materialises a (T, B, V) array of
log-probabilities and, in the gradient, another of softmax terms. This Op computes the forward pass
as logsumexp(z) - z[y] and its gradient as (softmax(z) - onehot(y)) * g in one piece each, which
made training steps faster on the JAX backend (docs/measurements.md, "fused cross-entropy").
`pytensor.grad` uses `pullback` below; the gradient check verifies it against central differences
like every other gradient.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from symlstm.backend.runtime import on_jax


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class SoftmaxCrossEntropy(Op):
    """(logits (..., V) float, targets (...) int) -> NLL (...)."""

    __props__ = ()

    def make_node(self, logits, targets):
        logits, targets = pt.as_tensor_variable(logits), pt.as_tensor_variable(targets)
        out = pt.tensor(dtype=logits.dtype, shape=logits.type.shape[:-1])
        return Apply(self, [logits, targets], [out])

    def perform(self, node, inputs, outputs):
        z, y = inputs
        m = z.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(axis=-1)) + m[..., 0]
        outputs[0][0] = np.asarray(lse - np.take_along_axis(z, y[..., None], axis=-1)[..., 0], dtype=z.dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0][:-1]]

    def pullback(self, inputs, outputs, output_grads):
        z, y = inputs
        return [SoftmaxCrossEntropyGrad()(z, y, output_grads[0]),
                pytensor.gradient.grad_undefined(self, 1, y, "targets are integers")]


class SoftmaxCrossEntropyGrad(Op):
    """(logits (..., V), targets (...), upstream gradient (...)) -> (softmax - onehot) * g, (..., V)."""

    __props__ = ()

    def make_node(self, logits, targets, g):
        logits = pt.as_tensor_variable(logits)
        return Apply(self, [logits, pt.as_tensor_variable(targets), pt.as_tensor_variable(g)], [logits.type()])

    def perform(self, node, inputs, outputs):
        z, y, g = inputs
        p = _softmax(z)
        np.put_along_axis(p, y[..., None], np.take_along_axis(p, y[..., None], axis=-1) - 1, axis=-1)
        outputs[0][0] = np.asarray(p * g[..., None], dtype=z.dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]


@on_jax
def register_jax():
    """JAX implementations of both Ops (called once, when the JAX backend is set up)."""
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    @jax_funcify.register(SoftmaxCrossEntropy)
    def _forward(op, **kwargs):
        return lambda z, y: jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[..., None], axis=-1)[..., 0]

    @jax_funcify.register(SoftmaxCrossEntropyGrad)
    def _backward(op, **kwargs):
        return lambda z, y, g: (jax.nn.softmax(z, axis=-1) - jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)) * g[..., None]


softmax_cross_entropy = SoftmaxCrossEntropy()
