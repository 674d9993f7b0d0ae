"""Reasoning with verifiable rewards (chapter 17): the *who has the ball?* task and its checkers.

tasks     the task family: problems, worked and direct answers, splits by difficulty
verifier  one function per check (answer, format, steps), every failure sorted into a class
scaling   many samples per problem: pass@k, majority vote
"""
