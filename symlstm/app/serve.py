"""`symlstm serve`: a local web page over the same engine as the CLI, and its JSON API.

Starlette (routing, JSON, a thread pool for blocking work) under uvicorn: both small, well kept
and free of templates or ORMs this app would not use. The page is three static files inside the
package, loaded once at start-up and served by name from a fixed table, so no request can name a
file. The compiled model is not thread-safe: every call into it holds one lock, while the event loop
keeps answering (bad requests get their one-line error at once). Requests and generation are
bounded (LIMITS).
"""
import json
import math
import re
import threading
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from symlstm.errors import UserError, one_line
from symlstm.poetics.forms import CI, FORM_NAMES, FORMS, is_form, layout, unknown_form
from symlstm.poetics.lexicon import Lexicon, known_tones
from symlstm.poetics.script import ASCII_PUNCT, MAX_CHARS, normalize_poem, to_traditional
from symlstm.poetics.tunes import load as load_tunes
from symlstm.workbench.decode import TONE_MODES, SampleOptions, Sampler, keywords_found, parse_keywords
from symlstm.workbench.measure import couplet_checks
from symlstm.workbench.scoring import score

LIMITS = {"body_bytes": 8192, "num": 8, "candidates": 16, "text_chars": MAX_CHARS, "keywords": 4,
          "temperature": (0.05, 3.0)}
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}


def tune_layout(form: str) -> str:
    return "".join(f"{n}{mark}" for n, mark in layout(form))


class RequestError(UserError, ValueError):
    """A request the API cannot serve, in one line for the page to show."""


def _field(body: dict, key: str, kind, default):
    value = body.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise RequestError(f"{key}: expected {kind.__name__}, got {json.dumps(value, ensure_ascii=False)}")
    return value


def sample_options(body: dict) -> SampleOptions:
    """A request body -> SampleOptions, every field typed and bounded (every request is in a form, so
    a poem is at most the longest tune's 142 characters, 賀新郎's)."""
    unknown = set(body) - {"form", "tones", "temperature", "num", "acrostic", "keywords", "template", "candidates", "seed",
                           "couplet"}
    if unknown:
        raise RequestError(f"unknown field {sorted(unknown)[0]!r}")
    num, candidates = _field(body, "num", int, 3), _field(body, "candidates", int, 8)
    temperature = _field(body, "temperature", float, 0.8)
    keywords = to_traditional(_field(body, "keywords", str, ""))
    words = parse_keywords(keywords)
    low, high = LIMITS["temperature"]
    if not 1 <= num <= LIMITS["num"]:
        raise RequestError(f"num: between 1 and {LIMITS['num']}, got {num}")
    if not 1 <= candidates <= LIMITS["candidates"]:
        raise RequestError(f"candidates: between 1 and {LIMITS['candidates']}, got {candidates}")
    if not low <= temperature <= high:
        raise RequestError(f"temperature: between {low} and {high}, got {temperature}")
    seed = _field(body, "seed", int, 0)
    if not 0 <= seed < 2 ** 32:
        raise RequestError(f"seed: between 0 and 2**32 - 1, got {seed}")
    if len(words) > LIMITS["keywords"]:
        raise RequestError(f"keywords: at most {LIMITS['keywords']}, got {len(words)}")
    couplet = to_traditional(_field(body, "couplet", str, "").strip().translate(ASCII_PUNCT)).rstrip("，。")
    if couplet:  # a 上聯: its 下聯, under the couplet's own rules
        if len(couplet) > LIMITS["text_chars"] // 2:
            raise RequestError(f"couplet: at most {LIMITS['text_chars'] // 2} characters, got {len(couplet)}")
        return SampleOptions(num=num, couplet=couplet, temperature=temperature, seed=seed)
    template = to_traditional(_field(body, "template", str, "").strip())
    form = _field(body, "form", str, "wujue")
    if not is_form(form):
        raise RequestError(unknown_form("form", form).replace("`symlstm tunes`", "/api/info"))
    tones = _field(body, "tones", str, "")
    if tones not in TONE_MODES:
        raise RequestError(f"tones {tones!r}: choose one of {', '.join(TONE_MODES[1:])} (or leave it out: loose)")
    return SampleOptions(num=num, form="" if template else form, tones=tones,
                         temperature=temperature, acrostic=to_traditional(_field(body, "acrostic", str, "").strip()),
                         keywords=words, template=template, candidates=candidates, seed=seed)


class Engine:
    """The model, its vocabulary and the lexicon, with one lock around every call into the model."""

    def __init__(self, compiled, vocab, name: str = ""):
        self.sampler, self.vocab, self.name = Sampler(compiled, vocab), vocab, name
        self.lex = Lexicon.load()
        self.lock = threading.Lock()

    def _rows(self, texts: list[str]) -> list[dict]:
        rows = score(texts, self.sampler.m, self.vocab, self.lex)
        for row in rows:
            row["marks"] = known_tones(row["text"], self.lex)  # 平 仄 ± ? (or the punctuation) per character
        return rows

    def sample(self, opts: SampleOptions) -> list[dict]:
        with self.lock:
            poems = self.sampler.sample(opts)
            rows = self._rows([p["text"] for p in poems])
        for row, p in zip(rows, poems):
            row.update({k: p[k] for k in ("score", "tone_rule") if k in p})
            if "note" in p:
                row["note"] = field_names(p["note"])  # the API's words: tones, not --tones
            if opts.couplet:  # judged as a couplet, which has no form and no rhyme to keep
                row.update(form=None, rhyme_ok=None, tones_ok=None, rhyme="a couplet (對聯) has no rhyme to keep",
                           couplet=couplet_checks(opts.couplet, p["text"][len(opts.couplet) + 1:], self.lex))
            if opts.keywords:
                row["keywords"] = keywords_found(p["text"], opts.keywords)
        return rows

    def score(self, text: str) -> dict:
        with self.lock:
            return self._rows([text])[0]


def field_names(message: str) -> str:
    """A message about options, in the API's words: the sampler names the command line's flags
    (--first, --acrostic …); the caller sent JSON fields (couplet, acrostic …)."""
    return re.sub(r"--([a-z][a-z-]*)", lambda m: {"first": "couplet"}.get(m[1], m[1].replace("-", "_")), message)


def create_app(engine: Engine) -> Starlette:
    pages = {path: (resources.files("symlstm.app").joinpath("static", name).read_bytes(), kind)
             for path, (name, kind) in STATIC.items()}

    def static(request: Request) -> Response:
        content, kind = pages[request.url.path]
        return Response(content, media_type=kind)

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > LIMITS["body_bytes"]:
            raise RequestError(f"request body over {LIMITS['body_bytes']} bytes")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise RequestError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({"model": engine.name, "vocabulary": len(engine.vocab),
                             "forms": [{"id": f, "name": FORM_NAMES[f], "layout": tune_layout(f)} for f in FORMS] +
                                      [{"id": CI + t, "name": f"詞・{t}", "layout": tune_layout(CI + t),
                                        "aliases": v.get("aliases", [])} for t, v in load_tunes().items()],
                             "tones": list(TONE_MODES[1:]), "limits": LIMITS})

    async def sample(request: Request) -> JSONResponse:
        opts = sample_options(await body_of(request))
        return JSONResponse({"poems": await run_in_threadpool(engine.sample, opts)})

    async def score_poem(request: Request) -> JSONResponse:
        body = await body_of(request)
        unknown = set(body) - {"text"}
        if unknown:
            raise RequestError(f"unknown field {sorted(unknown)[0]!r} (a score request has only 'text')")
        text = _field(body, "text", str, "").strip()
        if not text or len(text) > LIMITS["text_chars"]:
            raise RequestError(f"text: 1 to {LIMITS['text_chars']} characters, got {len(text)}")
        poem, converted = normalize_poem(text)  # as people type it; simplified characters converted
        row = await run_in_threadpool(engine.score, poem)
        return JSONResponse({"poem": {**row, "converted": converted}})

    async def user_error(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"error": one_line(field_names(str(err)))}, status_code=400)

    routes = [Route(path, static) for path in STATIC] + [
        Route("/api/info", info), Route("/api/sample", sample, methods=["POST"]),
        Route("/api/score", score_poem, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={UserError: user_error})


def load_test(url: str, requests: int = 20, num: int = 5, form: str = "wujue") -> dict:
    """`requests` concurrent POSTs of /api/sample (num poems of form each) from local threads; the
    count that succeeded and the p50/p95/max latency in seconds."""
    import urllib.request

    body = json.dumps({"num": num, "form": form, "temperature": 0.8}).encode()
    times, ok = [None] * requests, [False] * requests

    def one(k):
        start = time.perf_counter()
        req = urllib.request.Request(url.rstrip("/") + "/api/sample", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            ok[k] = resp.status == 200 and len(json.loads(resp.read())["poems"]) == num
        times[k] = time.perf_counter() - start

    threads = [threading.Thread(target=one, args=(k,)) for k in range(requests)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done = sorted(t for t in times if t is not None)

    def pick(q):  # nearest rank
        return done[max(0, math.ceil(q * len(done)) - 1)] if done else float("nan")

    return {"requests": requests, "succeeded": sum(ok), "p50_s": pick(0.5), "p95_s": pick(0.95),
            "max_s": done[-1] if done else float("nan"), "wall_s": wall}
