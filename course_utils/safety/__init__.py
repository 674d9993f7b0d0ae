"""Helpful and harmless (chapter 19): the tiny world's harmful requests, their look-alikes, the gold policy.

requests  the rules (what must be refused), harmful and look-alike requests, data sets that hold out
          act/target combinations, HH-style preference pairs
gold      the refusal rule, the gold judgement of a (request, answer), harmful-compliance and
          needless-refusal rates with Wilson intervals
methods   refusal SFT and DPO on the course's loops, and a model's safety report (the rates above)
"""
