"""Helpful and harmless (chapter 19): the tiny world's harmful requests, their look-alikes, the gold policy.

requests  the rules (what must be refused), harmful and look-alike requests, data sets that hold out
          act/target combinations, HH-style preference pairs
gold      the refusal rule, the gold judgement of a (request, answer), harmful-compliance and
          needless-refusal rates with Wilson intervals
methods   refusal SFT (at a look-alike share) and DPO on the course's loops, the red team, HH reward
          models as best-of-n rerankers, and a model's safety report (the rates above)
constitution  constitutional AI: a written constitution, a model that judges, critiques and revises by it
          (SL-CAI), AI preference labels, simulated human labelers with stated noise, rubric rewards
"""
