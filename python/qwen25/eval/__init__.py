"""Evaluation: the standard harnesses' scoring on qwen25 checkpoints, with contamination-aware
reporting (``qwen25 eval``).

* :func:`multiple_choice`: log-likelihood multiple choice as lm-evaluation-harness scores it
  (``acc``, ``acc_norm``), MMLU or cloze prompts, one forward per context with a KV cache;
* :func:`gsm8k`, :func:`gsm8k_extract`: few-shot generation with stop strings, strict and flexible
  answer extraction, exact match;
* :func:`humaneval`, :func:`pass_at_k`: completions executed in :mod:`qwen25.sandbox`, the unbiased
  pass@k estimator;
* :func:`perplexity`: on packed shards; :func:`passkey`: retrieval at growing lengths with and
  without YaRN + DCA; :func:`ifeval`: a documented subset of IFEval's verifiable instructions;
* :func:`evaluate`: the job behind ``qwen25 eval``: results.json, per-item samples, and each score
  next to the items a decontamination report says the training data hit.

Importing this package does not import torch; the functions that run a model do.
"""

from __future__ import annotations

from .code import execute, humaneval, pass_at_k
from .contamination import match_set, read_report, split_scores
from .data import load_items
from .generative import generate_until, gsm8k, gsm8k_exact_match, gsm8k_extract, gsm8k_prompt
from .ifeval import CHECKERS, check_instruction, ifeval
from .loglik import Request, encode_pair, score_requests
from .mc import mc_prompt, multiple_choice
from .passkey import passkey, passkey_prompt
from .perplexity import perplexity
from .runner import TASKS, EvalOptions, evaluate, format_table, load_model

__all__ = [
    "CHECKERS", "EvalOptions", "Request", "TASKS", "check_instruction", "encode_pair", "evaluate", "execute",
    "format_table", "generate_until", "gsm8k", "gsm8k_exact_match", "gsm8k_extract", "gsm8k_prompt", "humaneval",
    "ifeval", "load_items", "load_model", "match_set", "mc_prompt", "multiple_choice", "pass_at_k", "passkey",
    "passkey_prompt", "perplexity", "read_report", "score_requests", "split_scores",
]
