"""Mixed precision: a matrix product with bfloat16 factors and float32 accumulation, as an Op.

PyTensor has no bfloat16 dtype, so bf16 lives inside this Op: float32 in, float32 out. The factors
are rounded to bfloat16 (8 bits of mantissa, round to nearest even), multiplied, and the products
summed in float32, which is what `jnp.dot(a.astype(bf16), b.astype(bf16),
preferred_element_type=float32)` asks of XLA and what AMX or AVX512-BF16 units do in hardware.
Parameters, optimizer state, the elementwise LSTM math and the loss stay float32.

    Bf16Dot(a, b) = round(a) · round(b)               a (..., K), b (K, N) -> (..., N)
    ∂/∂a = Bf16Dot(g, bᵀ)     ∂/∂b = Bf16Dot(aᵀ, g)    (a, g flattened to rows; the transposes
                                                        are flags of the Op, see the class)

The gradient is itself two Bf16Dots (the rounding is treated as the identity, the straight-through
rule every mixed-precision trainer uses), so the backward GEMMs run in bf16 too. `model.py` picks
the product with `matmul(cfg.precision)`: plain `pt.dot` for `precision: float32`, this Op for
`bf16`; `resolve` turns `auto` into one of them when a model is compiled.

On this project's AMD EPYC (AVX512-BF16, no AMX) XLA's bf16 products ran faster than MKL's
`cblas_gemm_bf16bf16f32` (which was slower than MKL's own float32 there: docs/measurements.md, "bf16
products"), so the JAX backend uses XLA's own bf16 dot. The C and Numba backends run `perform`,
the NumPy reference below. `scan_push_out_add_bf16` is PyTensor's rewrite that takes a weight
gradient's sum out of a gradient scan, made to see Bf16Dot too (off unless a mode includes it).

`model.onednn_matmul` runs the training graph's large products (those outside the recurrence: the
output layer and its two gradient products) on oneDNN's matmul primitive instead, as PyTorch runs
`Linear` under autocast: `with_onednn` marks those Bf16Dots (the `onednn` flag, inherited by their
gradients) and the JAX code calls `backend/onednn` for them, each factor read in its own layout.
"""
import numpy as np
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.scan.op import Scan
from pytensor.scan.rewriting.db import scan_seqopt1
from pytensor.scan.rewriting.push_out import get_outer_ndim, inner_sitsot_only_last_step_used, push_out_inner_vars
from pytensor.scan.utils import ScanArgs
from pytensor.tensor.elemwise import Elemwise

from symlstm.backend import machine
from symlstm.backend.runtime import on_jax


def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), returned as float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


class Bf16Dot(Op):
    """op(a) · op(b) with bf16-rounded factors and float32 sums; op transposes a 2-D factor where
    the flag says so. a (..., K) or, transposed, (K, M); b (K, N) or, transposed, (N, K).

    The flags exist for XLA's sake: it runs a bf16 product whose left factor is read transposed
    (the weight gradient aᵀ·g) at a third of the speed of the same product on a transposed copy
    (docs/measurements.md, "transposed bf16 factor"), so the
    Op states the transpose and the JAX code below decides how to read it. `onednn`: the JAX code
    runs the product on oneDNN's matmul primitive (`with_onednn`); the value is the same product.
    """

    __props__ = ("transpose_a", "transpose_b", "onednn")

    def __init__(self, transpose_a=False, transpose_b=False, onednn=False):
        self.transpose_a, self.transpose_b, self.onednn = transpose_a, transpose_b, bool(onednn)

    def make_node(self, a, b):
        a, b = pt.as_tensor_variable(a), pt.as_tensor_variable(b)
        if a.dtype != "float32" or b.dtype != "float32" or b.ndim != 2 or a.ndim < 1 or \
                (self.transpose_a and a.ndim != 2):
            raise TypeError(f"Bf16Dot takes float32 (..., K) and (K, N), got {a.type} and {b.type}")
        rows = a.type.shape[1:] if self.transpose_a else a.type.shape[:-1]
        cols = b.type.shape[:1] if self.transpose_b else b.type.shape[1:]
        return Apply(self, [a, b], [pt.tensor(dtype="float32", shape=rows + cols)])

    def perform(self, node, inputs, outputs):
        a, b = (round_bf16(v).astype(np.float64) for v in inputs)
        a, b = a.T if self.transpose_a else a, b.T if self.transpose_b else b
        # float64 sums of the bf16-rounded factors: the reference the tests hold XLA against
        outputs[0][0] = np.dot(a, b).astype(np.float32)

    def infer_shape(self, fgraph, node, shapes):
        (sa, sb) = shapes
        return [(sa[1:] if self.transpose_a else sa[:-1]) + (sb[:1] if self.transpose_b else sb[1:])]

    def pullback(self, inputs, outputs, output_grads):
        a, b = inputs
        g = output_grads[0]
        ta, tb, k = self.transpose_a, self.transpose_b, self.onednn
        if ta:  # out = aᵀ·op(b), a (K, M): ∂a = op(b)·gᵀ, ∂b = a·g (or its transpose)
            da = Bf16Dot(tb, True, k)(b, g)  # (K, M)
            db = Bf16Dot(True, True, k)(g, a) if tb else Bf16Dot(onednn=k)(a, g)
            return [da, db]
        rows_a = a.reshape((-1, a.shape[-1])) if a.ndim != 2 else a  # (M, K)
        rows_g = g.reshape((-1, g.shape[-1])) if g.ndim != 2 else g  # (M, N)
        da = Bf16Dot(False, not tb, k)(g, b)  # (..., K): g·op(b)ᵀ
        db = Bf16Dot(True, False, k)(rows_g, rows_a) if tb else Bf16Dot(True, False, k)(rows_a, rows_g)
        return [da, db]


bf16_dot = Bf16Dot()


class RoundBf16(Op):
    """x -> x rounded to bfloat16 (kept in x's dtype), with the identity as its gradient.

    Not used in training: it builds the float64 reference of a bf16 model (`precision:
    bf16-reference`), whose `pytensor.grad` is the exact straight-through gradient that Bf16Dot's
    pullback approximates in bf16. The gradient check of the bf16 path compares the two."""

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        x = inputs[0]
        outputs[0][0] = round_bf16(x.astype(np.float32)).astype(x.dtype)

    def infer_shape(self, fgraph, node, shapes):
        return shapes

    def pullback(self, inputs, outputs, output_grads):
        return [output_grads[0]]


round_to_bf16 = RoundBf16()


@node_rewriter([Scan])
def scan_push_out_add_bf16(fgraph, node):
    """PyTensor's `scan_push_out_add` for the bf16 weight gradient. In a gradient scan the gradient
    of U is a sum over steps, acc_t = acc_{t-1} + h_tᵀ·g_t; PyTensor moves that out of the loop as
    one product over all T·B rows, but only when the product is a `Dot`. This does the same when it
    is `Bf16Dot(transpose_a=True)` (the pullback's weight product): the loop loses two Bf16Dots and
    two Adds a step, the graph gains one (T·B, H)ᵀ × (T·B, G·H) Bf16Dot. The change PyTensor
    itself would need is to match any Op that declares itself a matrix product, e.g. by a
    property of the Op, instead of `isinstance(op, Dot)`."""
    op = node.op
    if op.info.as_while:
        return False
    inner = op.fgraph
    adds = [n for n in inner.apply_nodes if isinstance(n.op, Elemwise) and isinstance(n.op.scalar_op, ps.Add)
            and len(n.inputs) == 2 and any(_weight_product(i) and len(inner.clients[i]) == 1 for i in n.inputs)]
    if not adds:
        return False
    args = ScanArgs(node.inputs, node.outputs, op.inner_inputs, op.inner_outputs, op.info, clone=False)
    for add in adds:
        if add.out not in args.inner_out_sit_sot or not inner_sitsot_only_last_step_used(fgraph, add.out, args):
            continue
        k = args.inner_out_sit_sot.index(add.out)
        if args.inner_in_sit_sot[k] not in add.inputs:
            continue
        product = add.inputs[1 - add.inputs.index(args.inner_in_sit_sot[k])]
        if not _weight_product(product):
            continue
        a, g = product.owner.inputs  # (B, K), (B, N) at one step
        if get_outer_ndim(a, args) != 3 or get_outer_ndim(g, args) != 3:
            continue
        (outer_a, outer_g), new_args, replacements = push_out_inner_vars(fgraph, [a, g], node, args)
        rows_a = outer_a.reshape((-1, outer_a.shape[2]))  # (T·B, K)
        rows_g = outer_g.reshape((-1, outer_g.shape[2]))  # (T·B, N)
        last = fgraph.clients[new_args.outer_out_sit_sot[k]][0][0].outputs[0]  # acc[-1]
        replacements[last] = Bf16Dot(transpose_a=True)(rows_a, rows_g) + new_args.outer_in_sit_sot[k][0]
        return replacements
    return False


def with_onednn(outputs: list) -> list:
    """`outputs` with every Bf16Dot of their graph (outside scans: the products over all steps)
    run on oneDNN's matmul; `pytensor.grad` then gives their gradient products the same flag."""
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.traversal import io_toposort

    while True:  # one at a time, first to last, so that a product feeding another is replaced once
        node = next((n for n in io_toposort([], outputs) if isinstance(n.op, Bf16Dot) and not n.op.onednn), None)
        if node is None:
            return outputs
        op = node.op
        outputs = graph_replace(outputs, {node.outputs[0]: Bf16Dot(op.transpose_a, op.transpose_b, True)(*node.inputs)},
                                strict=False)


def onednn_count(outputs: list) -> int:
    """How many products of the graph of `outputs` run on oneDNN's matmul."""
    from pytensor.graph.traversal import io_toposort

    return sum(isinstance(n.op, Bf16Dot) and n.op.onednn for n in io_toposort([], outputs))


def _weight_product(v):
    return v.owner is not None and isinstance(v.owner.op, Bf16Dot) and v.owner.op.transpose_a \
        and not v.owner.op.transpose_b


# Registered just after PyTensor's own but not in "fast_run": on this project's machine it made the
# bf16 step slower, not faster (docs/speed.md, "the bf16 push-out"); a mode turns it on with
# .including("scan_push_out_add_bf16").
scan_seqopt1.register("scan_push_out_add_bf16", dfs_rewriter(scan_push_out_add_bf16, ignore_newtrees=False),
                      "more_mem", "scan", "scan_pushout", position=6.01)


def reference_dot(a, b):
    """The float64 reference of Bf16Dot: exact products of the bf16-rounded factors."""
    return pt.dot(round_to_bf16(a), round_to_bf16(b))


def matmul(precision: str):
    """The matrix product the model's graphs use: pt.dot for float32 (and float64), Bf16Dot for
    bf16, and for `bf16-reference` (float64 checks only) the exact product of rounded factors."""
    return {"bf16": bf16_dot, "bf16-reference": reference_dot}.get(precision, pt.dot)


def matmul_nt(precision: str):
    """a · bᵀ in `precision`: the tied output layer's h · Eᵀ. For bf16 the transpose is Bf16Dot's
    flag, not a transposed view: XLA's CPU runtime refused the view's gradient product ("Unsupported
    element type for DotThunk::Execute: BF16 x BF16 = F32"), while the flag gives the same three
    products as the untied layer."""
    if precision == "bf16":
        return Bf16Dot(transpose_b=True)
    dot = matmul(precision)
    return lambda a, b: dot(a, b.T)


def resolve(precision: str, backend: str) -> str:
    """The precision a model runs at: `auto` becomes bf16 or float32 (`choose`), the others stay."""
    return choose(precision, backend)[0]


def choose(precision: str, backend: str) -> tuple[str, str]:
    """(the precision a model runs at, why). `auto` becomes bf16 only on the JAX backend where
    XLA has bf16 units to use (`machine.bf16_units`: read from the CPU, never timed) and where
    they measured faster than float32 (`bf16_is_faster`); else float32."""
    if precision != "auto":
        return precision, f"model.precision {precision}"
    if backend != "jax":
        return "float32", f"precision auto: float32 (bf16 needs the jax backend, not {backend})"
    if machine.jax_platform() == "cpu":
        ok, why = machine.bf16_units()
        if not ok:
            return "float32", f"precision auto: float32 ({why})"
    faster, figures = bf16_is_faster()
    return ("bf16" if faster else "float32"), f"precision auto: {'bf16' if faster else 'float32'} ({figures})"


MARGIN = 0.9  # `auto` takes bf16 only where it takes at most this share of float32's time


def bf16_is_faster(remeasure: bool = False) -> tuple[bool, str]:
    """Whether XLA's bf16 product beats its float32 one here by the margin, and the figures: a
    measurement made once per machine, JAX version and XLA cap and kept in ~/.cache/symlstm
    (SYMLSTM_JAX_CACHE's parent); `remeasure` (as `symlstm bench` does) makes it again.

    Why measure where the CPU has bf16 units: the answer depends on the CPU and XLA, not on a flag
    one can read: faster on this project's AMD EPYC (AVX512-BF16), slower on an Intel Xeon with
    AMX, which XLA does not use (docs/measurements.md, "bf16 or float32"). One cold 0.1 s timing
    flipped from run to run on a machine where the two were close, so both are warmed up, timed
    in turns seven times over, and compared by their medians with a margin.
    """
    import time

    import jax
    import jax.numpy as jnp

    def measure() -> dict:
        a = np.random.default_rng(0).random((512, 1024), dtype=np.float32)
        f = jax.jit(lambda u, v: jnp.matmul(u, v, preferred_element_type=jnp.float32))
        args = {d: (jnp.asarray(a, d), jnp.asarray(a.T, d)) for d in ("float32", "bfloat16")}
        times = {d: [] for d in args}
        for d in args:  # compile and warm up
            for _ in range(3):
                f(*args[d]).block_until_ready()
        for _ in range(7):
            for d in args:
                start = time.perf_counter()
                for _ in range(5):
                    f(*args[d]).block_until_ready()
                times[d].append((time.perf_counter() - start) / 5)
        return {d: float(np.median(t)) * 1e3 for d, t in times.items()}

    key = f"jax {jax.__version__} | {machine.jax_platform()} | XLA cap {machine.xla_isa_cap() or 'none'}"
    ms = machine.measured("precision", key, measure, refresh=remeasure)
    if not isinstance(ms, dict):  # kept by an older symlstm as a bare answer: measure again
        ms = machine.measured("precision", key, measure, refresh=True)
    faster = ms["bfloat16"] <= MARGIN * ms["float32"]
    return faster, (f"a 512×1024×512 product took {ms['bfloat16']:.2f} ms in bf16 against {ms['float32']:.2f} in "
                    f"float32{'' if faster else f', not under {MARGIN:.0%} of it'}; measured once, kept in "
                    f"precision.json beside the JAX cache")


@on_jax
def register_jax():
    """XLA's own bf16 dot with float32 accumulation (called once, when the JAX backend is set up)."""
    import jax.numpy as jnp
    from jax import lax
    from pytensor.link.jax.dispatch import jax_funcify

    def transposed(a):
        # a real transposed copy: XLA folds a plain transpose into the product, which then reads
        # it strided (the slow case above); through a 3-D swap it writes the copy
        K, M = a.shape
        return jnp.swapaxes(a.reshape(K, M, 1), 0, 2).reshape(M, K)

    @jax_funcify.register(Bf16Dot)
    def _bf16_dot(op, **kwargs):
        def f(a, b):
            a, b = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
            if op.onednn:  # oneDNN reads either layout itself: no transposed copy
                from symlstm.backend import onednn

                rows = a.shape[1:] if op.transpose_a else a.shape[:-1]
                flat = a if op.transpose_a else a.reshape(-1, a.shape[-1])
                out = onednn.matmul(flat, b, op.transpose_a, op.transpose_b)
                return out.reshape(tuple(rows) + out.shape[1:])
            if op.transpose_a:
                a = transposed(a)
            contract = (((a.ndim - 1,), (1 if op.transpose_b else 0,)), ((), ()))
            return lax.dot_general(a, b, contract, preferred_element_type=jnp.float32)
        return f

    @jax_funcify.register(RoundBf16)
    def _round(op, **kwargs):
        return lambda x: x.astype(jnp.float32).astype(jnp.bfloat16).astype(x.dtype)
