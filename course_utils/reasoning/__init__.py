"""Reasoning with verifiable rewards (chapter 17): the *who has the ball?* task and its checkers.

tasks       the task family: problems, worked and direct answers, splits by pattern and by length
verifier    one function per check (answer, format, steps), every failure sorted into a class
evaluation  SFT on the task, greedy checks of a model's answers, a report of the classes
rlvr        GRPO's reward, log and held-out eval hooks, built from the verifier
scaling     many samples per problem: pass@k, majority vote
"""
