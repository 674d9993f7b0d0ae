"""Teaching the language model from feedback: the RLHF loop and its alternatives (chapters 09-14).

* :mod:`course_utils.alignment.feedback` — the append-only preference store, simulated labelers,
  the gold preference; :mod:`course_utils.alignment.labeling` — the ipywidgets labeling widget;
* :mod:`course_utils.alignment.label_db` — a room's shared label store (SQLite);
  :mod:`course_utils.alignment.class_store` — the widget's store in class mode, with its offline queue;
* :mod:`course_utils.alignment.reward_model` — comparison pairs, the Bradley-Terry loss,
  training and scoring reward models;
* :mod:`course_utils.alignment.rlhf` — PPO for the language model on the shared PPO core
  (rollouts, KL estimators, token rewards);
* :mod:`course_utils.alignment.dpo` — direct preference optimisation (and IPO);
  :mod:`course_utils.alignment.kto` — KTO from unpaired labels;
* :mod:`course_utils.alignment.grpo` — group-relative policy optimisation (and RLOO) with a
  verifiable reward;
* :mod:`course_utils.alignment.iterative` — rejection sampling and online DPO, round by round.
"""
