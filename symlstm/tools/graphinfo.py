"""A look inside the symbolic graph: the recurrent step as PyTensor prints it, and what the
rewrites make of the whole training step (node counts, the ops left inside the scan)."""
import collections
import io

import pytensor
import pytensor.tensor as pt
from pytensor.graph.traversal import io_toposort
from pytensor.scan.op import Scan

from symlstm.backend.runtime import get_mode
from symlstm.config import ModelConfig, TrainConfig
from symlstm.core import model as M
from symlstm.core import optim
from symlstm.core.cells import GATES, STEPS, mogrifier_rounds, mogrifier_step
from symlstm.core.compiled import build_train_fn, train_graph


def step_graph(cfg: ModelConfig) -> str:
    """debugprint of one recurrent step of cfg.cell on fresh symbolic inputs."""
    H, G = cfg.hidden, GATES[cfg.cell]
    mask_t = pt.vector("mask_t", dtype=cfg.dtype)
    h_tm1 = pt.matrix("h_tm1", dtype=cfg.dtype, shape=(None, H))
    c_tm1 = pt.matrix("c_tm1", dtype=cfg.dtype, shape=(None, H))
    U = pt.matrix("U", dtype=cfg.dtype, shape=(H, G * H))
    if cfg.cell == "mogrifier":  # the first layer's step: its raw input, W, b and the rounds' matrices
        weights = {k: pt.tensor(k[len("layer0/"):], dtype=cfg.dtype, shape=v)
                   for k, v in M.param_shapes(1, cfg).items() if k.startswith("layer0/")}
        x_t = pt.matrix("x_t", dtype=cfg.dtype, shape=(None, cfg.embedding))
        rounds = mogrifier_rounds(weights, 0, cfg.mogrifier_rounds)
        h_t, c_t = mogrifier_step(x_t, mask_t, h_tm1, c_tm1, weights["layer0/W"], U, weights["layer0/b"], rounds)
    else:
        xw_t = pt.matrix("xw_t", dtype=cfg.dtype, shape=(None, G * H))
        h_t, c_t = STEPS[cfg.cell](xw_t, mask_t, h_tm1, c_tm1, pt.dot(h_tm1, U))
    buf = io.StringIO()
    pytensor.printing.debugprint([h_t, c_t] if cfg.cell in ("lstm", "mogrifier") else [h_t], file=buf, print_type=True)
    return buf.getvalue()


def training_graph_report(cfg: ModelConfig, vocab_size: int = 100, T: int = 32, B: int = 8) -> dict:
    """Node counts of the training step before and after PyTensor's rewrites, and the op types
    that run inside each compiled scan (forward and backward)."""
    params = M.to_shared(M.init_params(vocab_size, cfg, 0))
    tcfg = TrainConfig()
    state = optim.init_state(params, tcfg.optimizer)
    inputs, outputs, updates = train_graph(params, state, cfg, tcfg, (T, B))
    before = len(io_toposort(inputs, outputs + [u for _, u in updates]))
    fn = build_train_fn(params, state, cfg, tcfg, get_mode(cfg.backend), (T, B))
    nodes = fn.maker.fgraph.apply_nodes
    scans = []
    for node in nodes:
        if isinstance(node.op, Scan):
            ops = collections.Counter(type(n.op.scalar_op if hasattr(n.op, "scalar_op") else n.op).__name__
                                      for n in node.op.fgraph.apply_nodes)
            scans.append({"name": node.op.name, "nodes": len(node.op.fgraph.apply_nodes), "ops": dict(ops.most_common())})
    float64 = sum(1 for n in nodes for o in n.outputs if getattr(o.type, "dtype", "") == "float64")
    return {"nodes_before": before, "nodes_after": len(nodes), "scans": scans,
            "float64_outputs": float64 if cfg.dtype == "float32" else None, "function": fn}


def draw_svg(fn, path: str):
    """An SVG of a compiled function's graph; needs pydot and graphviz (the `graph` extra)."""
    try:
        import pydot  # noqa: F401
    except ImportError:
        raise RuntimeError("drawing needs pydot and graphviz: pip install pydot; apt-get install graphviz") from None
    pytensor.printing.pydotprint(fn, outfile=path, format="svg", print_output_file=False)
    return path
