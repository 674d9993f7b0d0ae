"""The teaching package of the course *Instruction tuning and RLHF, hands-on*: what the
chapters and labs import.

At the top level, in layers (a module imports only modules listed before it):

* :mod:`course_utils.world` — the tiny world: corpus, instruction tasks, gold reward;
  :mod:`course_utils.jsonl` — JSONL export/import with validation;
  :mod:`course_utils.hub` — what may reach the Hugging Face hub (nothing, unless a download is
  asked for); :mod:`course_utils.tokenizer` — the byte-level BPE tokenizer and chat template;
  :mod:`course_utils.device` — the device and precision; :mod:`course_utils.environment` — the
  pinned versions checked; :mod:`course_utils.sampling` — a batched sampler with the KV cache,
  faster than ``model.generate`` (opt-in: ``sampler="course"``);
* :mod:`course_utils.models` — the one loader (shipped names, local folders, hub ids) and generation;
* :mod:`course_utils.dashboard` — the one run dashboard every training loop logs to (a live
  plot, a JSONL log, warnings when a known failure signature appears);
* :mod:`course_utils.training` — the one training loop (seeded, checkpoints, Accelerate);
  :mod:`course_utils.pretrain` — pretraining the base model; :mod:`course_utils.sft` —
  instruction tuning;
* :mod:`course_utils.plotting` — plots any chapter may use.

Subpackages, by what a learner looks for:

* :mod:`course_utils.rl` — reinforcement learning without language models (tabular, DQN, the
  PPO core, PPO on Gymnasium); it imports nothing else of the package;
* :mod:`course_utils.alignment` — teaching the language model from feedback: labels and
  labelers, reward models, PPO for the language model, DPO, KTO, GRPO, iterative methods;
* :mod:`course_utils.evaluation` — measuring: exact match on the tasks, intervals and tests,
  arenas, judges, a reward-model benchmark, AI feedback;
* :mod:`course_utils.real` — the real-model track and multi-process SFT;
* :mod:`course_utils.reasoning` — RL with verifiable rewards: a reasoning task family, its
  verifier with failure classes, pass@k and majority vote;
* :mod:`course_utils.safety` — helpful and harmless: the tiny world's harmful requests and their
  harmless look-alikes, the gold policy's judgement of an answer, harmful-compliance and
  needless-refusal rates, refusal SFT, DPO on HH pairs, a red team and HH reward models;
* :mod:`course_utils.debugging` — when post-training goes wrong: each bug of chapter 18 as a
  few lines in an otherwise healthy run, and the dashboard checks it should fire.

On top of everything: :mod:`course_utils.pipeline` (``python -m course_utils.pipeline``: every
stage, one command) and :mod:`course_utils.experiments` (``make experiments``: the multi-seed
sweeps whose stored results chapters read).

Each algorithm is one module whose docstring states its formula and tensor shapes. The
course's machinery (grading, the sandbox, the website, the prose check, benchmarks,
notebook execution, the self-check widget) is the separate package :mod:`course_tools`; no
module here imports it (``tests/test_house.py``).
"""

__version__ = "0.1.0"
