"""The mimicry evaluation harness: does a cloak stop a LoRA mimic?

A mimic fine-tunes a text-to-image model with LoRA on an artist's clean images and,
separately, on the same images cloaked; both generate from the same prompts and
seeds; sfumato's style judge scores the results. ``sfumato evaluate`` runs it from a
config (``--config mini-quick``), :func:`run_evaluation` from Python.
"""

from .config import EvaluationConfig, GenerateSettings, ProtectSettings, load_config
from .run import Case, cases, run_evaluation

__all__ = ["EvaluationConfig", "GenerateSettings", "ProtectSettings", "load_config", "Case", "cases", "run_evaluation"]
