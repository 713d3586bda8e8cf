"""Commands about models and runs: train, eval, compare, plot, data, gradcheck, gradflow, graph, bench."""
import json
import sys
from pathlib import Path

from symlstm.backend.runtime import BACKENDS
from symlstm.config import MAIN_JOB
from symlstm.errors import UserError

from .common import SPLITS, Progress, print_result, project_root, seed_value, shared_args, warn


def train_args(p):
    p.add_argument("--config", help="YAML config (e.g. configs/poems.yaml)")
    shared_args(p, overrides=True)
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.h5")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    several = p.add_argument_group("several processes (JAX's distributed runtime; under SLURM or Open MPI it finds "
                                   "them itself)")
    several.add_argument("--coordinator-address", metavar="HOST:PORT", help="where process 0 listens for the others")
    several.add_argument("--num-processes", type=int, metavar="N", help="how many processes the run has")
    several.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to N-1")
    several.add_argument("--join-timeout", type=int, default=120, metavar="S",
                         help="seconds to wait for the other processes to join (default 120)")


def cmd_train(args):
    import os

    import traceback

    from symlstm.backend.distributed import DistributedError, join, ready
    from symlstm.errors import one_line

    _, count = join(args.coordinator_address, args.num_processes, args.process_id, args.join_timeout)
    if count == 1:
        return _train(args)
    try:  # one of several processes: whatever stops it stops it at once, saying why in one line (a bug
        return _train(args)  # with its traceback), not through JAX's exit barrier, which would wait for
    except BaseException as err:  # the others; those still setting up hear of it (`ready`)
        known = isinstance(err, UserError)
        if not isinstance(err, DistributedError):
            ready(one_line(str(err)) if known else f"{type(err).__name__} (a bug: see that process)")
        if not known:
            traceback.print_exc()
        print(f"symlstm train: error: {one_line(str(err))}" if known else "symlstm train: stopped by the error above",
              file=sys.stderr, flush=True)
        os._exit(2 if known else 1)


def _train(args):
    from symlstm.config import load_config
    from symlstm.run.train import train

    progress = not args.no_progress and sys.stderr.isatty()  # piped (`make train > log`): the log lines, no bar frames
    if args.resume:
        train(None, args.resume, project_root(), resume=True, overrides=args.set, progress=progress)
        return 0
    if not args.config:
        raise UserError("train: give --config FILE (or --resume RUN_DIR)")
    cfg = load_config(args.config, args.set)
    train(cfg, args.out or f"runs/{cfg.name}", project_root(), overwrite=args.overwrite, progress=progress)
    return 0


def eval_args(p):
    shared_args(p, checkpoint=True, backend=True, json=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one poem per line")
    src.add_argument("--split", choices=SPLITS)
    src.add_argument("--couplets", help="one couplet per line (上聯，下聯。): the perplexity of each 下聯 given its 上聯")
    src.add_argument("--samples", type=int, metavar="N",
                     help="instead of perplexity: the context gain of the quatrains among N free samples, read by "
                          "the model that wrote them")
    p.add_argument("--temperature", type=float, default=1.0, help="of --samples (default 1: the model's own distribution)")
    p.add_argument("--seed", type=seed_value, default=0, help="of --samples: 0 to 2**32 - 1")
    p.add_argument("--batch-size", type=int, default=32)


def cmd_eval(args):
    from symlstm.corpus.loading import read_poems
    from symlstm.run.checkpoint import load_model
    from symlstm.run.evaluate import evaluate_couplets, evaluate_split, evaluate_texts, sample_context_gain

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    if args.samples is not None:
        result = {f"context_{k}": v for k, v in
                  sample_context_gain(compiled, vocab, args.samples, args.temperature, args.seed).items()}
    elif args.couplets:
        result = evaluate_couplets(compiled, vocab, read_poems(args.couplets))
    elif args.text:
        result = evaluate_texts(compiled, vocab, read_poems(args.text), args.batch_size)
    else:
        result = evaluate_split(compiled, vocab, cfg.data, args.split, project_root(), args.batch_size, warn=warn)
    print_result(result, args.json, 18)
    return 0


def compare_args(p):
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one poem per line")
    src.add_argument("--split", choices=SPLITS, help="a split of --config's corpus")
    p.add_argument("--config", default=MAIN_JOB, help="the corpus of --split (default: %(default)s)")
    p.add_argument("--couplets", action="store_true",
                   help="the poems are couplets (上聯，下聯。): each 下聯's perplexity given its 上聯")
    p.add_argument("--limit", type=int, default=0, help="only the first N poems (0, the default: all)")
    p.add_argument("--batch-size", type=int, default=32)
    shared_args(p, backend=True, json=True)


def cmd_compare(args):
    from symlstm.config import load_config
    from symlstm.corpus.loading import load_corpus, read_poems
    from symlstm.run.checkpoint import load_model
    from symlstm.run.evaluate import compare

    forms = None
    if args.text:
        texts = read_poems(args.text)
    else:
        corpus = load_corpus(load_config(args.config).data, project_root(), warn=warn)
        texts = corpus.texts[args.split]
        if corpus.vocab.has_form_tokens:  # the corpus knows each poem's form token (a ci's tune)
            forms = [corpus.vocab.itos[t] for t in corpus.splits[args.split].firsts()]
    if args.limit:
        texts, forms = texts[:args.limit], forms and forms[:args.limit]
    models = {}
    with Progress("compare: loading the checkpoints", unit="poem") as bar:
        for path in args.checkpoints:
            compiled, vocab, _ = load_model(path, args.backend)
            models[path] = (compiled, vocab)

        def row_done(row):  # each form's row as soon as every model has it
            if row is None:
                bar.done("| form | poems | " + " | ".join(models) + " |\n|---|---|" + "---|" * len(models))
            else:
                bar.done(f"| {row['form']} | {row['poems']} | " + " | ".join(f"{row[m]:.1f}" for m in models) + " |")

        result = compare(models, texts, args.batch_size, couplets=args.couplets, forms=forms, tick=bar.tick,
                         row_done=None if args.json else row_done)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    print(f"{result['known']} of {result['poems']} poems have only characters every model knows (the rows above)")
    return 0


def gradcheck_args(p):
    p.add_argument("--config", help="check this config's model sizes instead of the standard tiny models")
    shared_args(p, overrides=True, json=True)
    p.add_argument("--vocab-size", type=int, default=50)
    p.add_argument("--max-entries", type=int, default=40, help="entries checked per tensor (sampled beyond)")
    p.add_argument("--backend", default="jax", choices=list(BACKENDS))


def cmd_gradcheck(args):
    import dataclasses

    from symlstm.config import load_config
    from symlstm.tools.gradcheck import (
        BF16_TOLERANCE,
        TOLERANCE,
        bf16_gradient_check,
        gradient_check,
        onednn_models,
        standard_models,
    )

    skipped = ""
    if args.config:
        mcfg = load_config(args.config, args.set).model
        models = [dataclasses.replace(mcfg, dtype="float64")]
        vocab = args.vocab_size
    else:  # and through oneDNN where it makes a bf16 LSTM here: its bf16 path only (it computes in float32 and bf16)
        through, skipped = onednn_models(args.backend)
        models = standard_models(args.backend) + through
        vocab = 6
    def name(mcfg):
        return f"{mcfg.cell} L={mcfg.num_layers} H={mcfg.hidden}" + " tied" * mcfg.tie_weights + \
            " dropout" * any(v for k, v in dataclasses.asdict(mcfg).items() if "dropout" in k) + \
            " op" * (mcfg.lstm_op and mcfg.cell == "lstm") + " onednn" * (mcfg.onednn_lstm == "on")

    # Each model's rows are printed as soon as they are computed (the whole check takes minutes), so
    # that whatever stops it keeps what was done; a bar on a terminal counts the checks.
    checks = [(m, "central") for m in models if m.onednn_lstm != "on"] + \
        [(m, "bf16") for m in models if args.backend == "jax"]  # the bf16 path: against its float64 reference
    bar = Progress("gradcheck", unit="model", total=len(checks))
    out = (lambda line: None) if args.json else bar.done
    out(f"{'model':<29} {'parameter':<12} {'shape':<10} {'entries':>7} {'max abs err':>12} {'max rel err':>12}")
    table, bf16 = [], []
    with bar:
        for k, (mcfg, kind) in enumerate(checks):
            if kind == "bf16" and checks[k - 1][1] == "central":
                out(f"largest relative error {max(r['max_rel_error'] for r in table):.2e} (tolerance {TOLERANCE:.0e})")
                out("\nbf16 path (precision: bf16) against the float64 gradient of the same rounded products")
            rows = gradient_check(mcfg, vocab_size=vocab, max_entries=args.max_entries) if kind == "central" \
                else bf16_gradient_check(mcfg, vocab_size=vocab)
            for r in rows:
                r["model"] = name(mcfg)
                flag = "" if r["passed"] else "  FAIL"
                out(f"{r['model']:<29} {r['parameter']:<12} {'x'.join(map(str, r['shape'])):<10} "
                    + (f"{r['entries']:>7} {r['max_abs_error']:>12.2e} {r['max_rel_error']:>12.2e}{flag}"
                       if kind == "central" else f"max |a-r|/max|r| {r['max_rel_error']:.2e}{flag}"))
            (table if kind == "central" else bf16).extend(rows)
            bar.tick(1, f"gradcheck: {name(mcfg)}")
    ok = all(r["passed"] for r in table + bf16)
    if args.json:
        print(json.dumps({"tolerance": TOLERANCE, "passed": bool(ok), "rows": table,
                          "bf16_tolerance": BF16_TOLERANCE, "bf16_rows": bf16,
                          **({"onednn_rows_left_out": skipped} if skipped else {})}, indent=1))
    else:
        if not bf16:
            out(f"largest relative error {max(r['max_rel_error'] for r in table):.2e} (tolerance {TOLERANCE:.0e})")
        else:
            out(f"largest {max(r['max_rel_error'] for r in bf16):.2e} (tolerance {BF16_TOLERANCE:.0e})")
        if skipped:
            out(f"no rows through oneDNN: {skipped}")
        out("PASSED" if ok else "FAILED")
    return 0 if ok else 1


def plot_args(p):
    p.add_argument("run_dir")


def cmd_plot(args):
    from symlstm.run.plots import plot_metrics

    print(plot_metrics(Path(args.run_dir)))
    return 0


def data_args(p):
    p.add_argument("--out", default="data/full")


def cmd_data(args):
    from symlstm.corpus.fetch import make_data

    with Progress("data: fetching chinese-poetry", unit="step") as bar:
        counts, report = make_data(Path(args.out), tick=bar.tick)
    for name, n in counts.items():
        print(f"{Path(args.out) / (name + '.txt')}: {n} poems")
    top = ", ".join(f"{ch}→{'/'.join(f'{t} {n}' for t, n in forms.items())}" for ch, forms in list(report["chosen"].items())[:8])
    print(f"{Path(args.out) / 'songci.json'}: the ci in traditional characters with their tune names ({report['converter']}); "
          f"{report['one_to_many_positions']} positions held one of {report['one_to_many_characters']} one-to-many "
          f"characters, decided by OpenCC's phrase table (most frequent: {top}); "
          f"every choice in {Path(args.out) / 'songci_conversion.json'}")
    return 0


def bench_args(p):
    p.add_argument("--backend", default="jax", choices=list(BACKENDS))
    p.add_argument("--steps", type=int, default=20, help="timed steps per shape (after 3 warm-up steps)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    p.add_argument("--no-sampling", action="store_true")
    p.add_argument("--no-starts", action="store_true", help="skip the cold/warm start measurement")
    p.add_argument("--no-system-malloc", action="store_true",
                   help="skip the second training run with glibc's malloc left as it is")
    p.add_argument("--isa", choices=("native", "avx2"), default="native",
                   help="avx2: run capped to AVX2 (XLA, oneDNN, PyTorch, MKL), measuring the class of CPUs without AVX-512")
    p.add_argument("--main-job", default=MAIN_JOB, metavar="CONFIG",
                   help="the first row's config, timed against PyTorch's same recipe (default: %(default)s); 'none' skips it")
    p.add_argument("--main-only", action="store_true", help="only the main job's row")
    p.add_argument("--pieces", action="store_true",
                   help="also the main job's step piece by piece (host, optimizer, recurrence, output layer), both libraries")
    p.add_argument("--rounds", type=int, default=8, help="blocks of 10 steps each library times in the main job's row")
    shared_args(p, json=True)
    p.add_argument("--torch-train", metavar="CONFIG",
                   help="instead: train CONFIG's recipe in PyTorch (same split, batches, budget) and print its perplexity")
    p.add_argument("--bf16", action="store_true", help="with --torch-train: under torch.autocast(bfloat16)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a key of --torch-train's config or of the main job's")


def cmd_bench(args):
    import os
    import subprocess

    from symlstm.backend.machine import avx2_env, isa_class
    from symlstm.tools.bench import as_json, format_table, run_all

    if args.torch_train:
        from symlstm.config import load_config
        from symlstm.tools.torch_reference import train_reference

        cfg = load_config(args.torch_train, args.overrides)
        result = train_reference(cfg, ".", bf16=args.bf16)
        print(as_json(result) if args.json else
              f"PyTorch {result['torch']}{' autocast bf16' if args.bf16 else ''}, {args.torch_train}: "
              f"{result['steps']} steps, {result['epochs']} epochs, {result['elapsed_sec']:.0f} s of steps; "
              f"best validation perplexity {result['valid_perplexity']:.2f}, test {result['test_perplexity']:.2f}")
        return 0
    if args.isa == "avx2" and isa_class() != "AVX2":  # the caps act when the libraries load: a process of its own
        if not isa_class().startswith("AVX-512"):
            raise UserError(f"--isa avx2: this CPU is {isa_class()}; the caps only narrow an x86 CPU with AVX-512 to AVX2")
        return subprocess.run([sys.executable, "-m", "symlstm", *sys.argv[1:]], env=avx2_env(os.environ)).returncode
    with Progress("bench: starting", unit="part") as bar:
        result = run_all(args.backend, args.steps, with_torch=False if args.no_torch else None,
                         sampling=not args.no_sampling, starts=not args.no_starts,
                         system_malloc=not args.no_system_malloc, tick=bar.tick,
                         main=None if args.main_job == "none" else args.main_job, shapes=not args.main_only,
                         rounds=args.rounds, overrides=args.overrides, pieces=args.pieces,
                         done=lambda line: bar.done(line, file=sys.stderr))  # the table, whole, on stdout at the end
    print(as_json(result) if args.json else format_table(result))
    return 0


def gradflow_args(p):
    p.add_argument("--checkpoint", help="a trained model (else fresh models of each of --cells)")
    p.add_argument("--cells", default="rnn,gru,lstm")
    p.add_argument("--config", help="sizes and corpus of the fresh models")
    shared_args(p, seed=True, overrides=True)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--length", type=int, default=101, help="T: distances 0 … T-1 (101 reaches distance 100)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--random", action="store_true", help="random token sequences instead of the corpus")
    p.add_argument("--out", default="runs/gradflow")


def cmd_gradflow(args):
    import numpy as np

    from symlstm.config import load_config
    from symlstm.tools.gradflow import gradient_flow, plot, prepare, summary_row, write_csv

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config, args.set) if args.config else load_config(
        raw={"model": {"hidden": args.hidden, "embedding": args.embedding}}, overrides=args.set)
    models, x, y = prepare(cfg, project_root(), args.checkpoint, [c.strip() for c in args.cells.split(",")],
                           args.random, args.length, args.batch, args.seed)
    results = [{**gradient_flow(params, mcfg, x, y), "label": label} for label, mcfg, params in models]
    write_csv(results, out / "gradflow.csv")
    plot(results, out / "gradflow.png")
    print(f"{'model':<18}{'|dL/dh| d=1':>13}{'d=10':>11}{'d=50':>11}{'d=100':>11}{'decay/step':>12}{'forget gate':>13}")
    for r in results:
        row = summary_row(r)
        fg = f"{row['forget_gate_mean']:.3f}" if np.isfinite(row["forget_gate_mean"]) else "-"
        print(f"{r['label']:<18}{row['d1']:>13.2e}{row['d10']:>11.2e}{row['d50']:>11.2e}{row['d100']:>11.2e}"
              f"{row['decay_per_step']:>12.3f}{fg:>13}")
    print(f"wrote {out / 'gradflow.csv'} and {out / 'gradflow.png'}")
    return 0


def graph_args(p):
    p.add_argument("--config")
    shared_args(p, overrides=True)
    p.add_argument("--svg", help="draw the compiled training graph (needs pydot and graphviz)")


def cmd_graph(args):
    from symlstm.config import load_config
    from symlstm.tools.graphinfo import draw_svg, step_graph, training_graph_report

    cfg = load_config(args.config, args.set) if args.config else load_config(overrides=args.set)
    print(f"one {cfg.model.cell} step (pytensor.printing.debugprint):")
    print(step_graph(cfg.model))
    r = training_graph_report(cfg.model)
    print(f"training step ({cfg.model.backend} backend): {r['nodes_before']} nodes before rewrites, "
          f"{r['nodes_after']} after")
    if r["float64_outputs"] is not None:
        print(f"float64 results in the float32 graph: {r['float64_outputs']}")
    for scan in r["scans"]:
        ops = ", ".join(f"{k}×{v}" for k, v in scan["ops"].items())
        print(f"scan {scan['name']}: {scan['nodes']} nodes: {ops}")
    if args.svg:
        try:
            print(f"wrote {draw_svg(r['function'], args.svg)}")
        except RuntimeError as err:
            raise UserError(str(err)) from None
    return 0


COMMANDS = [  # name, help, arguments, command: in the order `symlstm --help` lists them
    ("train", "train a model from a YAML config", train_args, cmd_train),
    ("eval", "perplexity of a checkpoint on a file or a split", eval_args, cmd_eval),
    ("compare", "perplexity of several checkpoints per form, on the poems all of them know", compare_args, cmd_compare),
    ("gradcheck", "symbolic against numeric gradients", gradcheck_args, cmd_gradcheck),
    ("plot", "write RUN_DIR/loss.png from metrics.csv", plot_args, cmd_plot),
    ("bench", "training and sampling chars/s against PyTorch", bench_args, cmd_bench),
    ("gradflow", "gradient norms across time for RNN, GRU and LSTM", gradflow_args, cmd_gradflow),
    ("graph", "print the recurrent step's graph and the compiled training graph's size", graph_args, cmd_graph),
    ("data", "fetch the chinese-poetry corpus into data/full", data_args, cmd_data),
]
