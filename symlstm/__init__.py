"""symlstm: a character-level LSTM language model for classical Chinese poetry, on PyTensor.

The public API: build parameters (`init_params`), compile them (`compile_model`), train
(`train`), sample (`Sampler`, `SampleOptions`), evaluate (`evaluate`), score a poem (`score`) and
check gradients (`gradient_check`).
"""
from symlstm.config import Config, DataConfig, ModelConfig, TrainConfig, load_config
from symlstm.core.compiled import compile_model
from symlstm.core.model import init_params
from symlstm.corpus.loading import load_corpus
from symlstm.run.checkpoint import load_model
from symlstm.run.evaluate import evaluate, evaluate_texts
from symlstm.run.train import train
from symlstm.tools.gradcheck import gradient_check
from symlstm.vocab import Vocab
from symlstm.workbench.decode import SampleOptions, Sampler
from symlstm.workbench.scoring import score

__all__ = ["compile_model", "Config", "ModelConfig", "TrainConfig", "DataConfig", "load_config",
           "Vocab", "load_corpus", "SampleOptions", "Sampler", "evaluate", "evaluate_texts",
           "gradient_check", "init_params", "load_model", "score", "train"]
