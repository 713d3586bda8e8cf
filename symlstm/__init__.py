"""symlstm: a character-level LSTM language model for classical Chinese poetry, on PyTensor.

The public API: build parameters (`init_params`), compile them (`compile_model`), train
(`train`), sample (`Sampler`, `SampleOptions`), evaluate (`evaluate`), score a poem (`score`) and
check gradients (`gradient_check`).
"""
from .checkpoint import load_model
from .compiled import compile_model
from .config import Config, ModelConfig, TrainConfig, DataConfig, load_config
from .corpus import load_corpus
from .decode import SampleOptions, Sampler
from .evaluate import evaluate, evaluate_texts
from .gradcheck import gradient_check
from .model import init_params
from .scoring import score
from .train import train
from .vocab import Vocab

__all__ = ["compile_model", "Config", "ModelConfig", "TrainConfig", "DataConfig", "load_config",
           "Vocab", "load_corpus", "SampleOptions", "Sampler", "evaluate", "evaluate_texts",
           "gradient_check", "init_params", "load_model", "score", "train"]
