"""Helpers for the course *Instruction tuning and RLHF, hands-on*.

Layers, each importing only those above it in this list:

* :mod:`course_utils.world` — the tiny world: corpus, instruction tasks, gold reward;
  :mod:`course_utils.jsonl` — JSONL export/import with validation;
  :mod:`course_utils.hub` — what may reach the Hugging Face hub (nothing, unless a download is asked for);
* :mod:`course_utils.tokenizer` — the byte-level BPE tokenizer and chat template;
  :mod:`course_utils.models` — the one loader (shipped names, local folders, hub ids) and generation;
* :mod:`course_utils.training` — the one training loop (seeded, checkpoints, Accelerate);
  :mod:`course_utils.pretrain` — pretraining the base model; :mod:`course_utils.sft` — instruction tuning;
  :mod:`course_utils.evaluation` — exact match on the instruction tasks;
* the RL core, which knows nothing of language models: :mod:`course_utils.tabular` — Bellman
  solvers and Q-learning; :mod:`course_utils.dqn` — DQN; :mod:`course_utils.ppo` — GAE and the
  PPO core (used for CartPole and, later, the language model);
  :mod:`course_utils.policy_gradient` — PPO on Gymnasium environments;
* RLHF on the language model: :mod:`course_utils.reward_model` — comparison pairs, the
  Bradley-Terry loss, training and scoring reward models; :mod:`course_utils.rlhf` — PPO for
  the language model on the shared PPO core (rollouts, KL estimators, token rewards);
  :mod:`course_utils.dpo` — direct preference optimisation; :mod:`course_utils.grpo` — group
  relative policy optimisation with a verifiable reward;
* beside them, on the data layer alone: :mod:`course_utils.feedback` — the append-only
  preference store and simulated labelers; :mod:`course_utils.labeling` — the ipywidgets
  labeling widget;
* :mod:`course_utils.distributed` — the same SFT on several processes (``torchrun`` /
  ``accelerate launch``);
* :mod:`course_utils.plotting` — plots any chapter may use; :mod:`course_utils.uncertainty` —
  intervals over seeds (t), for accuracies (Wilson) and for paired differences (bootstrap);
* :mod:`course_utils.pipeline` — ``python -m course_utils.pipeline``;
  :mod:`course_utils.experiments` — ``make experiments``, the multi-seed sweeps whose stored
  results chapters read.

The course's machinery (grading, the sandbox, the website, the prose check, benchmarks,
notebook execution, the self-check widget) is the separate package :mod:`course_tools`; no
module here imports it.
"""

__version__ = "0.1.0"
