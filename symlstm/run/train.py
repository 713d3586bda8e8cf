"""The training loop: batches -> train_step -> validate -> checkpoint, with metrics and samples.

Never builds graphs (it calls `compile_model`). Data order is a function of (seed, epoch), and the
dropout generator, the optimizer state and the `RunState` live in the checkpoint, so `--resume`
continues exactly. A run validates every `eval_every` steps and once more when it ends; it checks
what it can before the first step, and whatever ends it, it saves what it trained.
"""
import collections
import csv
import dataclasses
import math
import signal
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from symlstm.backend.devices import process, resolve
from symlstm.backend.distributed import agree, is_lost, lost, ready
from symlstm.config import Config, load_config
from symlstm.core.compiled import compile_model
from symlstm.core.model import VOCAB_AXES, carry_over, init_params, param_shapes
from symlstm.core.optim import checkpoint_arrays, is_average, learning_rate, resumed_arrays
from symlstm.core.paths import decide
from symlstm.core.sampling import sample_texts
from symlstm.corpus.batching import RowsOf, batch_shapes, padding_fraction, poem_batches, stream_batches
from symlstm.corpus.loading import Corpus, load_corpus
from symlstm.corpus.novelty import NoveltyIndex
from symlstm.errors import UserError
from symlstm.poetics.forms import form_group
from symlstm.run import checkpoint as ckpt_io
from symlstm.run.evaluate import nll_sum, stream_eval_batches
from symlstm.run.plots import plot_metrics

METRICS = ["step", "epoch", "train_loss", "valid_loss", "valid_perplexity", "learning_rate",
           "grad_norm", "chars_per_sec", "elapsed_sec"]
FORM_METRICS = ["step", "form", "poems", "valid_loss", "valid_perplexity"]  # valid_forms.csv (form tokens)


class TrainingError(UserError, RuntimeError):
    """A run that cannot start or go on, with what to change."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite: the run stops without saving the broken parameters."""


def say(message: str):
    """The default log: one line, flushed at once (runs are often watched through a pipe)."""
    print(message, flush=True)


@dataclasses.dataclass
class RunState:
    """Where a run stands; saved in every checkpoint (`extra`) so that a resume picks it up."""
    step: int = 0  # optimizer steps taken
    epoch: int = 0  # 0-based epoch of the next batch
    batch_in_epoch: int = 0  # index of the next batch within the epoch
    elapsed_sec: float = 0.0  # seconds spent in training steps (what time_budget counts)
    best_valid_loss: float = float("inf")
    bad_validations: int = 0  # validations since the best one (what patience counts)
    valid_loss: float | None = None  # the latest validation's


def epoch_batches(cfg: Config, corpus: Corpus, epoch: int):
    """The batches of one epoch, in the order fixed by (seed, epoch)."""
    rng = np.random.default_rng([cfg.train.seed, epoch])
    d = cfg.data
    if d.mode == "stream":
        offset = int(rng.integers(0, d.seq_length))
        return list(stream_batches(corpus.splits["train"], d.batch_size, d.seq_length, cfg.model.dtype, offset))
    return poem_batches(corpus.splits["train"], d.batch_size, rng, cfg.model.dtype, pool=d.bucket_pool,
                        multiple=d.length_multiple)


def validation_losses(compiled, cfg: Config, seqs, vocab) -> tuple[float, dict]:
    """Mean NLL per token (nats) over a split, and per form when the poems start with form tokens
    (form -> (loss, poems); `forms.form_group` names the groups, all ci in one); a stream shorter
    than one batch is scored with the rows it has."""
    d = cfg.data
    if d.mode == "stream":
        total, count = nll_sum(compiled, stream_eval_batches(seqs, d.batch_size, d.seq_length, cfg.model.dtype), True)
        return total / count, {}
    groups = {}
    if vocab.has_form_tokens:
        names = np.array([form_group(vocab.itos[t]) for t in seqs.firsts()])
        groups = {name: seqs.subset(names == name) for name in sorted(set(names))}
    sums = {name: nll_sum(compiled, poem_batches(part, d.batch_size, dtype=cfg.model.dtype,
                                                 multiple=d.length_multiple))
            for name, part in (groups or {"all": seqs}).items()}
    loss = sum(t for t, _ in sums.values()) / sum(n for _, n in sums.values())
    return loss, {name: (sums[name][0] / sums[name][1], len(groups[name])) for name in groups}


def preflight(cfg: Config, corpus: Corpus):
    """Refuse, before any work, a run whose splits cannot give a training batch or a validation."""
    d = cfg.data
    tokens = {k: sum(len(s) for s in v) for k, v in corpus.splits.items()}
    if d.mode == "stream":
        need = d.batch_size * d.seq_length + d.seq_length + 1  # rows × window, plus the epoch's random offset
        if tokens["train"] < need:
            raise TrainingError(
                f"{d.path}: the training split has {tokens['train']} tokens, fewer than data.batch_size × "
                f"data.seq_length + data.seq_length + 1 = {need}; lower data.batch_size or data.seq_length")
        chars = tokens["valid"] - 2 * len(corpus.splits["valid"])  # without <bos> and <eos>
        if chars < 1:
            raise TrainingError(f"{d.path}: the validation split has {chars} characters; "
                                f"raise data.valid_fraction (now {d.valid_fraction})")
    n = resolve(cfg.train.devices, cfg.model.backend)
    if d.batch_size % n:
        raise TrainingError(f"data.batch_size {d.batch_size} does not split over train.devices {n}: make it a multiple")
    if d.mode == "poem" and not corpus.splits["valid"]:
        raise TrainingError(f"{d.path}: the validation split is empty ({len(corpus.splits['train'])} poems in "
                            f"training); raise data.valid_fraction (now {d.valid_fraction}) or add poems")


def pretrained(cfg: Config, root: Path) -> ckpt_io.Checkpoint | None:
    """The checkpoint `train.init_from` names (None without one), read and held against this config
    before anything is written: the same parameters, of the same shapes but along the token axis
    (`model.VOCAB_AXES`), whose length is each vocabulary's."""
    if not cfg.train.init_from:
        return None
    path = Path(cfg.train.init_from)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise TrainingError(f"{path} (train.init_from): checkpoint not found; train the run that writes it first "
                            "(poems-pretrained.yaml starts from shi.yaml's: `make data`, then `make train CONFIG=shi.yaml`)")
    saved = ckpt_io.load(path)

    def shown(name, shape):  # "V×256": the vocabulary's axis may differ, the others may not
        return "none" if shape is None else "×".join("V" if k == VOCAB_AXES.get(name) else str(n)
                                                      for k, n in enumerate(shape))

    mine, theirs = param_shapes(1, cfg.model), {k: v.shape for k, v in saved.params.items()}
    for name in sorted(set(mine) | set(theirs)):
        if shown(name, mine.get(name)) != shown(name, theirs.get(name)):
            raise TrainingError(f"{path} (train.init_from): its parameter {name} is {shown(name, theirs.get(name))}, "
                                f"this config's {shown(name, mine.get(name))}; model.* must be the checkpoint's "
                                "(cell, sizes, layers, tying)")
    return saved


def initial_params(cfg: Config, vocab, saved: ckpt_io.Checkpoint | None, log=say) -> dict:
    """A new run's parameters: the seeded init, or those of the `pretrained` checkpoint (its weight
    average, where it kept one) on this run's vocabulary: each token takes its row there
    (`model.carry_over`), and tokens that checkpoint never saw keep their init."""
    fresh = init_params(len(vocab), cfg.model, cfg.train.seed)
    if saved is None:
        return fresh
    params, carried = carry_over(saved.params, saved.vocab, fresh, vocab.itos)
    log(f"init_from {cfg.train.init_from} (step {saved.step}): {carried} of the {len(vocab)} tokens take its rows, "
        f"{len(vocab) - carried} start from the init; the optimizer, the schedule and the weight average start afresh")
    return params


def _prepare_run_dir(run_dir: Path, overwrite: bool):
    if (run_dir / "last.h5").exists() or (run_dir / "metrics.csv").exists():
        if not overwrite:
            raise TrainingError(f"{run_dir}: already holds a run; use --resume to continue it or --overwrite to replace it")
        for name in ("last.h5", "best.h5", "metrics.csv", "valid_forms.csv", "loss.png"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def _resume_config(run_dir: Path, cfg: Config | None, overrides) -> tuple[Config, ckpt_io.Checkpoint]:
    """Load run_dir/last.h5 once: its config with `overrides` applied (or `cfg`, which may change
    train.* settings only) and the checkpoint itself."""
    path = run_dir / "last.h5"
    if not path.is_file():
        raise TrainingError(f"{run_dir}: nothing to resume (no last.h5)")
    saved = ckpt_io.load(path)
    own = load_config(raw=saved.config, overrides=overrides)
    if cfg is None:
        cfg = own
    if (cfg.model, cfg.data) != (own.model, own.data):
        raise TrainingError(f"{path}: --resume may change train.* settings only, not model.* or data.*")
    return cfg, saved


class Trainer:
    """One run: a compiled model, its data and its run directory. `run()` trains to the first of
    max_epochs, max_steps, time_budget, early stopping or Ctrl-C."""

    def __init__(self, cfg: Config, corpus: Corpus, run_dir: Path, log, params: dict):
        self.cfg, self.corpus, self.run_dir, self.log = cfg, corpus, run_dir, log
        self.index, self.count = process()  # of a run of several processes, only process 0 writes
        self.main = self.index == 0
        self._local = None  # several processes: process 0's one-device copy of the model, for samples
        self.state = RunState()
        self.compiled = compile_model(params, cfg.model, cfg.train, seed=cfg.train.seed, devices=cfg.train.devices)
        self.novelty = NoveltyIndex(corpus.texts["train"])
        # several processes: each keeps only its rows of every batch (the plan of batches is the same everywhere)
        self.rows = self.compiled.placement.rows(cfg.data.batch_size) if self.count > 1 else slice(None)
        self.first_epoch = self._epoch(0)
        t = cfg.train
        self.step_limit = t.max_steps or t.max_epochs * len(self.first_epoch)
        window = max(1, t.eval_every)  # the train curve: a moving average over this many steps
        self.recent = collections.deque(maxlen=window)  # (loss, grad norm) of the latest steps
        self.chars = self.seconds = 0.0  # since the last validation: the reported chars/s
        self.session_steps, self.session_seconds = 0, 0.0  # since this process started: the bar's pace
        self.compile_seconds = 0.0  # compiling the step, shown on the bar apart from its rate
        self.halt = False  # a Ctrl-C as of the last step (in a run of several processes: in any of them)

    def _epoch(self, epoch: int):
        """An epoch's batches; in a run of several processes, only this process's rows of each
        (`batching.RowsOf`: the others' rows are never built here)."""
        batches = epoch_batches(self.cfg, self.corpus, epoch)
        return batches if self.count == 1 else RowsOf(batches, self.rows)

    # -- resume ---------------------------------------------------------------------------------
    def resume(self, saved: ckpt_io.Checkpoint):
        """Continue from a checkpoint: optimizer state (unless the optimizer changed), dropout
        generator and run state; the parameters came in through the constructor."""
        c = self.compiled
        saved_optimizer = saved.config["train"]["optimizer"]
        params, state = resumed_arrays(saved.params, saved.optimizer, self.cfg.train.ema > 0)
        c.set_params(params)  # the trained weights, where the checkpoint's parameters are their average
        if saved_optimizer == self.cfg.train.optimizer:
            c.set_state(state)
        else:
            self.log(f"optimizer changed from {saved_optimizer} to {self.cfg.train.optimizer}: its state starts afresh")
            c.set_state({k: v for k, v in state.items() if is_average(k)})
        if saved.rng:
            c.rng.bit_generator.state = saved.rng["dropout"]
        fields = {f.name for f in dataclasses.fields(RunState)}
        self.state = RunState(**{k: v for k, v in saved.extra.items() if k in fields})
        self.state.step, self.state.epoch, self.state.best_valid_loss = saved.step, saved.epoch, saved.best_valid_loss

    # -- checkpoints and metrics ----------------------------------------------------------------
    def save(self, name: str):
        s, c = self.state, self.compiled
        if not self.main:
            return
        params, optimizer = checkpoint_arrays(c.get_params(), c.get_state())  # params: the average, if any
        ckpt_io.save(self.run_dir / name, ckpt_io.Checkpoint(
            config=self.cfg.to_dict(), vocab=self.corpus.vocab.itos, params=params, optimizer=optimizer,
            rng={"dropout": c.rng.bit_generator.state}, step=s.step, epoch=s.epoch,
            best_valid_loss=s.best_valid_loss, extra=dataclasses.asdict(s)))

    def _write_metrics(self, row: dict):
        if not self.main:
            return
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _write_form_metrics(self, step: int, per_form: dict):
        """valid_forms.csv: one row per form and validation (step, form, poems, loss, perplexity)."""
        if not self.main:
            return
        path = self.run_dir / "valid_forms.csv"
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(FORM_METRICS)
            for name, (loss, n) in per_form.items():
                writer.writerow([step, name, n, f"{loss:.5f}", f"{math.exp(loss):.3f}"])

    def validate_and_checkpoint(self, lr: float):
        """Validate, checkpoint and print samples, all of the weight average where `train.ema` keeps
        one (the checkpoint's parameters: `optim.checkpoint_arrays`)."""
        s = self.state
        with self.compiled.averaged():
            s.valid_loss, per_form = validation_losses(self.compiled, self.cfg, self.corpus.splits["valid"],
                                                       self.corpus.vocab)
        if not math.isfinite(s.valid_loss):  # the last step's update broke the parameters
            raise NonFiniteLoss(f"validation loss became {s.valid_loss} at step {s.step} (epoch {s.epoch}); the "
                                f"last good checkpoint is {self.run_dir / 'last.h5'}; try a lower "
                                "train.learning_rate")
        if s.valid_loss < s.best_valid_loss:
            s.best_valid_loss, s.bad_validations = s.valid_loss, 0
            improved = True
        else:
            s.bad_validations, improved = s.bad_validations + 1, False
        losses, norms = zip(*self.recent) if self.recent else ((), ())
        rate = self.chars / self.seconds if self.seconds else 0.0
        row = {"step": s.step, "epoch": s.epoch, "train_loss": f"{np.mean(losses):.5f}" if losses else "",
               "valid_loss": f"{s.valid_loss:.5f}", "valid_perplexity": f"{math.exp(s.valid_loss):.3f}",
               "learning_rate": f"{lr:.6g}", "grad_norm": f"{np.mean(norms):.4f}" if norms else "",
               "chars_per_sec": f"{rate:.1f}", "elapsed_sec": f"{s.elapsed_sec:.1f}"}
        self._write_metrics(row)
        self.log(f"step {s.step:6d} | epoch {s.epoch:3d} | train {row['train_loss'] or '-':>8} | valid {s.valid_loss:.4f} "
                 f"(ppl {math.exp(s.valid_loss):8.2f}) | lr {lr:.2e} | {rate:7.0f} chars/s | {s.elapsed_sec:7.1f} s")
        if per_form:
            self._write_form_metrics(s.step, per_form)
            self.log("  valid per form: " + ", ".join(f"{name} {math.exp(loss):.1f} ({n})"
                                                      for name, (loss, n) in per_form.items()))
        self.chars = self.seconds = 0.0
        self.save("last.h5")
        if improved:
            self.save("best.h5")
        with self.compiled.averaged():
            texts = sample_texts(self._sampling_model(), self.corpus.vocab, self.cfg.train.num_samples,
                                 self.cfg.train.sample_temperature, seed=s.step) if self.main else ()
        for text in texts:
            shared = self.novelty.report(text)["longest_shared"] if text else 0
            self.log(f"  sample: {text}    [longest shared with training: {shared} chars]")

    def _sampling_model(self):
        """The model samples are drawn from: the trained one, or in a run of several processes a
        copy on process 0's first device (the trained one's functions would run on every process)."""
        if self.count == 1:
            return self.compiled
        if self._local is None:
            self._local = compile_model(self.compiled.get_params(), self.cfg.model, devices=None)
        else:
            self._local.set_params(self.compiled.get_params())
        return self._local

    # -- the loop -------------------------------------------------------------------------------
    def stop_reason(self, interrupted: bool) -> str | None:
        """The one place that decides whether the run ends after the step just taken."""
        s, t = self.state, self.cfg.train
        if interrupted:
            return "interrupted"
        if t.max_steps and s.step >= t.max_steps:
            return "max_steps"
        if t.time_budget and s.elapsed_sec >= t.time_budget:
            return "time_budget"
        if t.patience and s.bad_validations >= t.patience:
            return "early_stopping"
        if s.epoch >= t.max_epochs:
            return "max_epochs"
        return None

    def _bar_total(self, taken: int, seconds: float) -> int:
        """The progress bar's length: the step limit, or the steps the time budget leaves room for
        at the pace so far, whichever ends the run first."""
        s, budget = self.state, self.cfg.train.time_budget
        if not budget or not taken:
            return self.step_limit
        left = max(0.0, budget - s.elapsed_sec) / (seconds / taken)
        return min(self.step_limit, s.step + math.ceil(left))

    def one_epoch(self, bar, interrupted: list) -> str | None:
        """Train from the current batch to the epoch's end or until a stop reason; validates every
        eval_every steps. Returns the stop reason, or None at the end of the epoch."""
        s, t, c = self.state, self.cfg.train, self.compiled
        batches = self.first_epoch if s.epoch == 0 else self._epoch(s.epoch)
        shapes = batch_shapes(batches)
        took = c.warm_up(shapes)  # compiling is not training: outside the time budget
        if took:
            self.log(f"compiled the training step for {len(shapes)} batch shapes in {took:.0f} s (outside the budget); "
                     f"matrix products in {c.cfg.precision}")
            bar.unpause()  # nor in the bar's rate and time left: it reports the compile time apart
            self.compile_seconds += took
        h, cell = c.zero_state(batches[0][0].shape[1])  # stream mode: carried from batch to batch
        while s.batch_in_epoch < len(batches):
            x, y, mask = batches[s.batch_in_epoch]
            if self.cfg.data.mode == "poem":
                h, cell = c.zero_state(x.shape[1])
            lr = learning_rate(t, s.step, s.epoch, self.step_limit, s.elapsed_sec)
            start = time.perf_counter()
            loss, norm, h, cell = c.train_step(x, y, mask, h, cell, lr)
            took = time.perf_counter() - start
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"loss became {loss} at step {s.step + 1} (epoch {s.epoch}); the last good "
                                    f"checkpoint is {self.run_dir / 'last.h5'}; try a lower train.learning_rate")
            s.step, s.batch_in_epoch, s.elapsed_sec = s.step + 1, s.batch_in_epoch + 1, s.elapsed_sec + took
            self.session_steps, self.session_seconds = self.session_steps + 1, self.session_seconds + took
            # several processes: process 0's clock and a Ctrl-C in any of them decide for all, as one
            # process stopping alone would leave the others waiting in the next step (a Ctrl-C that
            # comes after the exchange counts at the next step); the characters are every process's
            chars, self.halt = float(mask.sum()), bool(interrupted)
            if self.count > 1:
                s.elapsed_sec, self.halt, chars = agree(s.elapsed_sec, self.halt, chars)
            self.recent.append((loss, norm))
            self.chars, self.seconds = self.chars + chars, self.seconds + took
            bar.total = self._bar_total(self.session_steps, self.session_seconds)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", chars_s=f"{self.chars / max(self.seconds, 1e-9):.0f}",
                            compiled=f"{self.compile_seconds:.0f}s")
            if s.step % t.eval_every == 0:
                self.validate_and_checkpoint(lr)
            reason = self.stop_reason(self.halt)
            if reason:
                return reason
        s.epoch, s.batch_in_epoch = s.epoch + 1, 0
        return self.stop_reason(self.halt or (self.count == 1 and bool(interrupted)))

    def run(self, progress: bool) -> str:
        s = self.state
        interrupted = []
        old_handler = signal.signal(signal.SIGINT, lambda *a: interrupted.append(True))
        bar = tqdm(total=self.step_limit, initial=min(s.step, self.step_limit), disable=not progress, unit="step",
                   dynamic_ncols=True, leave=False)
        reason = self.stop_reason(False)
        try:
            while reason is None:
                reason = self.one_epoch(bar, interrupted)
        except NonFiniteLoss:
            raise  # the parameters are not worth saving; last.h5 holds the last good ones
        except BaseException as err:
            several = self.count > 1 and is_lost(err)
            if self.session_steps:  # whatever else stops the run, keep what it trained; a run that
                try:  # took no step leaves nothing that would block its own retry
                    self.save("last.h5")
                except Exception:  # parameters a failed collective was computing cannot be read:
                    if not several:  # last.h5 stays the last validation's
                        raise
            if several:
                raise lost(err, self.index, self.count) from None  # a collective whose other end is gone
            raise
        finally:
            bar.close()
            signal.signal(signal.SIGINT, old_handler)
        if s.valid_loss is None or s.step % self.cfg.train.eval_every != 0:
            self.validate_and_checkpoint(learning_rate(self.cfg.train, s.step, s.epoch, self.step_limit, s.elapsed_sec))
        return reason


def train(cfg: Config | None, run_dir, root=".", resume: bool = False, overwrite: bool = False, overrides=(),
          log=say, progress: bool = True) -> dict:
    """Train per cfg into run_dir (last.h5, best.h5, metrics.csv, loss.png). With resume, training
    continues from run_dir/last.h5 with the checkpoint's own config plus `overrides` (or with cfg,
    which may change train.* settings only). Returns a summary dict."""
    run_dir, root = Path(run_dir), Path(root)
    index, count = process()
    if index:  # of several processes, process 0 reports and writes; the others train beside it
        print(f"process {index} of {count}: joined the run; process 0 reports it and writes {run_dir}", flush=True)
        log, progress = (lambda *_: None), False
    saved = None
    if resume:
        cfg, saved = _resume_config(run_dir, cfg, overrides)
    # an `on` that cannot run here stops before anything is written or replaced
    paths = decide(cfg.model, resolve(cfg.train.devices, cfg.model.backend))
    start = None if resume else pretrained(cfg, root)  # so does a train.init_from that cannot start it
    if not resume and not index:
        _prepare_run_dir(run_dir, overwrite)
    log(f"config: {cfg.to_json()}")
    for line in paths.lines:  # what each part runs here and why
        log(line)
    corpus = load_corpus(cfg.data, root, warn=log)
    vocab = corpus.vocab
    log(f"corpus: {corpus.stats['poems']} poems, vocabulary {len(vocab)}, "
        f"train/valid/test {len(corpus.splits['train'])}/{len(corpus.splits['valid'])}/{len(corpus.splits['test'])}, "
        f"cache {corpus.stats.get('cache', 'off')}")
    if saved is not None and saved.vocab != vocab.itos:
        raise TrainingError(f"{run_dir / 'last.h5'}: its vocabulary ({len(saved.vocab)} tokens) does not match "
                            f"the corpus ({len(vocab)} tokens); the corpus files changed since the run started")
    preflight(cfg, corpus)
    params = saved.params if saved is not None else initial_params(cfg, vocab, start, log)
    trainer = Trainer(cfg, corpus, run_dir, log, params)
    if saved is not None:
        trainer.resume(saved)
        s = trainer.state
        log(f"resuming {run_dir / 'last.h5'} at step {s.step} (epoch {s.epoch}, batch {s.batch_in_epoch})")
    t = cfg.train
    log(f"batches: {len(trainer.first_epoch)} per epoch of {cfg.data.batch_size} rows, padding "
        f"{padding_fraction(trainer.first_epoch):.1%} of the positions; {t.max_epochs} epochs at most"
        + (f", {t.time_budget:.0f} s budget" if t.time_budget else ""))
    if count > 1:
        ready()  # every process set up, or the one that could not says why
        log(f"processes: {count}, the batch split over the {trainer.compiled.placement.n} devices of all of them")
    reason = trainer.run(progress)
    s = trainer.state
    plot = plot_metrics(run_dir) if not index else None
    log(f"stopped ({reason}) at step {s.step}, epoch {s.epoch}: best valid loss {s.best_valid_loss:.4f} "
        f"(ppl {math.exp(s.best_valid_loss):.2f}); wrote {run_dir / 'last.h5'}, {run_dir / 'best.h5'}, "
        f"{run_dir / 'metrics.csv'}, {plot}")
    return {"step": s.step, "epoch": s.epoch, "best_valid_loss": s.best_valid_loss, "valid_loss": s.valid_loss,
            "stop_reason": reason, "elapsed_sec": s.elapsed_sec, "run_dir": str(run_dir)}
