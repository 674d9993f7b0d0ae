"""Measuring models and methods (chapters 03, 12-15).

* :mod:`course_utils.evaluation.tasks` — exact match on the tiny world's instruction tasks;
* :mod:`course_utils.evaluation.uncertainty` — intervals over seeds (t), for accuracies
  (Wilson), for paired differences (bootstrap, McNemar);
* :mod:`course_utils.evaluation.arena` — Bradley-Terry scores from pairwise outcomes, with
  prompt-grouped bootstrap intervals;
* :mod:`course_utils.evaluation.judges` — agreement, position and length bias of a pairwise
  judge, swap-averaging; :mod:`course_utils.evaluation.ai_feedback` — the pairwise LM judge
  and preference labels from it;
* :mod:`course_utils.evaluation.rewardbench` — one-component reward-model benchmark pairs,
  accuracy per category.
"""
