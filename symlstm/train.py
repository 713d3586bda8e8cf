"""The training loop: batches -> train_step -> validate -> checkpoint, with metrics and samples.

Never builds graphs (it calls `compile_model`). Data order is a function of (seed, epoch), and the
dropout generator and optimizer state live in the checkpoint, so `--resume` continues exactly.
"""
import csv
import math
import signal
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import checkpoint as ckpt_io
from .batching import padding_fraction, poem_batches, stream_batches
from .compiled import compile_model
from .config import Config, from_dict
from .corpus import Corpus, Vocab, load_corpus
from .decode import sample_poems
from .model import init_params
from .novelty import NoveltyIndex
from .optim import learning_rate

METRICS = ["step", "epoch", "train_loss", "valid_loss", "valid_perplexity", "learning_rate",
           "grad_norm", "chars_per_sec", "elapsed_sec"]


class TrainingError(RuntimeError):
    pass


def say(message: str):
    """The default log: one line, flushed at once (runs are often watched through a pipe)."""
    print(message, flush=True)


def epoch_batches(cfg: Config, corpus: Corpus, epoch: int):
    """The batches of one epoch, in the order fixed by (seed, epoch)."""
    rng = np.random.default_rng([cfg.train.seed, epoch])
    d = cfg.data
    if d.mode == "stream":
        offset = int(rng.integers(0, d.seq_length))
        return list(stream_batches(corpus.splits["train"], d.batch_size, d.seq_length, cfg.model.dtype, offset))
    return list(poem_batches(corpus.splits["train"], d.batch_size, rng, cfg.model.dtype, pool=d.bucket_pool,
                             multiple=d.length_multiple))


def validate(compiled, cfg: Config, seqs) -> float:
    """Mean NLL per token (nats) over a split."""
    d = cfg.data
    total = count = 0.0
    if d.mode == "stream":
        h, c = compiled.zero_state(d.batch_size)
        batches = stream_batches(seqs, d.batch_size, d.seq_length, cfg.model.dtype)
    else:
        batches = poem_batches(seqs, d.batch_size, dtype=cfg.model.dtype, multiple=d.length_multiple)
    for x, y, mask in batches:
        if d.mode != "stream":
            h, c = compiled.zero_state(x.shape[1])
        t, n, h, c = compiled.evaluate(x, y, mask, h, c)
        total, count = total + t, count + n
    if count == 0:
        raise TrainingError("the validation split is empty or shorter than one batch")
    return total / count


def plot_metrics(run_dir: Path) -> Path:
    """Write loss.png (train and validation loss against step) from metrics.csv."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.csv in this run directory")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    fig, ax = plt.subplots(figsize=(7, 4))
    tr = [(int(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    va = [(int(r["step"]), float(r["valid_loss"])) for r in rows if r["valid_loss"]]
    if tr:
        ax.plot(*zip(*tr), label="train (mean since last point)")
    if va:
        ax.plot(*zip(*va), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("NLL per token (nats)")
    ax.set_title(Path(run_dir).name)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(run_dir) / "loss.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool):
    if resume:
        if not (run_dir / "last.h5").is_file():
            raise TrainingError(f"{run_dir}: nothing to resume (no last.h5)")
        return
    if (run_dir / "last.h5").exists() or (run_dir / "metrics.csv").exists():
        if not overwrite:
            raise TrainingError(f"{run_dir}: already holds a run; use --resume to continue it or --overwrite to replace it")
        for name in ("last.h5", "best.h5", "metrics.csv", "loss.png"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def train(cfg: Config | None, run_dir, root=".", resume: bool = False, overwrite: bool = False,
          log=say, progress: bool = True) -> dict:
    """Train per cfg into run_dir (last.h5, best.h5, metrics.csv, loss.png). With resume, training
    continues from run_dir/last.h5 (cfg None: the checkpoint's own config). Returns a summary dict."""
    run_dir, root = Path(run_dir), Path(root)
    _prepare_run_dir(run_dir, resume, overwrite)
    state = None
    if resume:
        state = ckpt_io.load(run_dir / "last.h5")
        saved = from_dict(state.config, source=str(run_dir / "last.h5"))
        if cfg is None:
            cfg = saved
        elif (cfg.model, cfg.data) != (saved.model, saved.data):
            raise TrainingError(f"{run_dir / 'last.h5'}: --resume may change train.* settings only, "
                                "not model.* or data.*")
    log(f"config: {cfg.to_json()}")
    corpus = load_corpus(cfg.data, root, warn=log)
    vocab = corpus.vocab
    log(f"corpus: {corpus.stats['poems']} poems, vocabulary {len(vocab)}, "
        f"train/valid/test {len(corpus.splits['train'])}/{len(corpus.splits['valid'])}/{len(corpus.splits['test'])}, "
        f"cache {corpus.stats.get('cache', 'off')}")
    if state is not None and state.vocab != vocab.itos:
        raise TrainingError(f"{run_dir / 'last.h5'}: its vocabulary ({len(state.vocab)} tokens) does not match "
                            f"the corpus ({len(vocab)} tokens); the corpus files changed since the run started")
    params = state.params if state else init_params(len(vocab), cfg.model, cfg.train.seed)
    compiled = compile_model(params, cfg.model, cfg.train, seed=cfg.train.seed)
    step, epoch, batch_in_epoch, best = 0, 0, 0, float("inf")
    elapsed = 0.0
    if state:
        if saved.train.optimizer == cfg.train.optimizer:
            compiled.set_state(state.optimizer)
        else:
            log(f"optimizer changed from {saved.train.optimizer} to {cfg.train.optimizer}: its state starts afresh")
        if state.rng:
            compiled.rng.bit_generator.state = state.rng["dropout"]
        step, epoch, best = state.step, state.epoch, state.best_valid_loss
        batch_in_epoch = state.extra.get("batch_in_epoch", 0)
        elapsed = state.extra.get("elapsed_sec", 0.0)
        log(f"resuming {run_dir / 'last.h5'} at step {step} (epoch {epoch}, batch {batch_in_epoch})")

    novelty = NoveltyIndex(corpus.texts["train"])
    t = cfg.train
    first_epoch = epoch_batches(cfg, corpus, 0)
    n_batches = len(first_epoch)
    log(f"batches: {n_batches} per epoch of {cfg.data.batch_size} rows, padding {padding_fraction(first_epoch):.1%} "
        f"of the positions; {t.max_epochs} epochs at most" + (f", {t.time_budget:.0f} s budget" if t.time_budget else ""))
    total_steps = t.max_steps or t.max_epochs * n_batches
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.exists():
        with metrics_path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(METRICS)

    def save(name, valid_loss=None):
        ck = ckpt_io.Checkpoint(
            config=cfg.to_dict(), vocab=vocab.itos, params=compiled.get_params(),
            optimizer=compiled.get_state(), rng={"dropout": compiled.rng.bit_generator.state},
            step=step, epoch=epoch, best_valid_loss=best,
            extra={"batch_in_epoch": batch_in_epoch, "elapsed_sec": elapsed, "valid_loss": valid_loss})
        ckpt_io.save(run_dir / name, ck)

    interrupted = []
    old_handler = signal.signal(signal.SIGINT, lambda *a: interrupted.append(True))
    window = {"loss": 0.0, "n": 0, "chars": 0, "time": 0.0, "norm": 0.0}
    bad_validations, stop_reason = 0, "max_epochs"
    last_valid = None
    bar = tqdm(total=total_steps, initial=min(step, total_steps), disable=not progress, unit="step",
               dynamic_ncols=True, leave=False)

    def run_validation(lr):
        nonlocal best, bad_validations, last_valid
        valid_loss = validate(compiled, cfg, corpus.splits["valid"])
        last_valid = valid_loss
        rate = window["chars"] / window["time"] if window["time"] else 0.0
        row = [step, epoch, f"{window['loss'] / window['n']:.5f}" if window["n"] else "",
               f"{valid_loss:.5f}", f"{math.exp(valid_loss):.3f}", f"{lr:.6g}",
               f"{window['norm'] / window['n']:.4f}" if window["n"] else "", f"{rate:.1f}", f"{elapsed:.1f}"]
        with metrics_path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(row)
        log(f"step {step:6d} | epoch {epoch:3d} | train {row[2] or '-':>8} | valid {valid_loss:.4f} "
            f"(ppl {math.exp(valid_loss):8.2f}) | lr {lr:.2e} | {rate:7.0f} chars/s | {elapsed:7.1f} s")
        window.update(loss=0.0, n=0, chars=0, time=0.0, norm=0.0)
        improved = valid_loss < best
        if improved:
            best, bad_validations = valid_loss, 0
        else:
            bad_validations += 1
        save("last.h5", valid_loss)
        if improved:
            save("best.h5", valid_loss)
        for text in sample_poems(compiled, vocab, t.num_samples, t.sample_temperature, seed=step):
            shared = novelty.report(text)["longest_shared"] if text else 0
            log(f"  sample: {text}    [longest shared with training: {shared} chars]")

    lr = learning_rate(t, step, epoch, total_steps)
    try:
        while epoch < t.max_epochs:
            batches = first_epoch if epoch == 0 else epoch_batches(cfg, corpus, epoch)
            h, c = compiled.zero_state(cfg.data.batch_size)  # stream mode: carried from batch to batch
            while batch_in_epoch < len(batches):
                x, y, mask = batches[batch_in_epoch]
                if cfg.data.mode == "poem":
                    h, c = compiled.zero_state(x.shape[1])
                lr = learning_rate(t, step, epoch, total_steps)
                start = time.perf_counter()
                loss, norm, h, c = compiled.train_step(x, y, mask, h, c, lr)
                took = time.perf_counter() - start
                if not math.isfinite(loss):
                    raise TrainingError(f"loss became {loss} at step {step + 1} (epoch {epoch}); "
                                        f"the last good checkpoint is {run_dir / 'last.h5'}; try a lower train.learning_rate")
                step += 1
                batch_in_epoch += 1
                elapsed += took
                window["loss"] += loss
                window["norm"] += norm
                window["n"] += 1
                window["chars"] += int(mask.sum())
                window["time"] += took
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", chars_s=f"{window['chars'] / max(window['time'], 1e-9):.0f}")
                if interrupted:
                    stop_reason = "interrupted"
                    break
                if t.max_steps and step >= t.max_steps:
                    stop_reason = "max_steps"
                    break
                if t.time_budget and elapsed >= t.time_budget:
                    stop_reason = "time_budget"
                    break
                if step % t.eval_every == 0:
                    run_validation(lr)
                    if t.patience and bad_validations >= t.patience:
                        stop_reason = "early_stopping"
                        break
            if stop_reason != "max_epochs":
                break
            epoch += 1
            batch_in_epoch = 0
            if step % t.eval_every != 0:
                run_validation(lr)
                if t.patience and bad_validations >= t.patience:
                    stop_reason = "early_stopping"
                    break
        if stop_reason in ("max_steps", "time_budget", "interrupted") or last_valid is None:
            run_validation(lr)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, old_handler)
    plot = plot_metrics(run_dir)
    log(f"stopped ({stop_reason}) at step {step}, epoch {epoch}: best valid loss {best:.4f} "
        f"(ppl {math.exp(best):.2f}); wrote {run_dir / 'last.h5'}, {run_dir / 'best.h5'}, {metrics_path}, {plot}")
    return {"step": step, "epoch": epoch, "best_valid_loss": best, "valid_loss": last_valid,
            "stop_reason": stop_reason, "elapsed_sec": elapsed, "run_dir": str(run_dir)}


def load_model(path, backend: str | None = None):
    """(CompiledModel, Vocab, Config) from a checkpoint, ready for sampling and evaluation."""
    import dataclasses

    state = ckpt_io.load(path)
    cfg = from_dict(state.config, source=str(path))
    mcfg = cfg.model if backend is None else dataclasses.replace(cfg.model, backend=backend)
    compiled = compile_model(state.params, mcfg, cfg.train)
    return compiled, Vocab(state.vocab), cfg
