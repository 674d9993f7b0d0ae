# Draft: lab 14 (after chapter 17). Writes solutions/lab14_verifiable_rewards/lab14_verifiable_rewards.ipynb;
# then `make labs` generates the student version. Check with probe_lab and the oracle attack (maintainers.md).
import nbformat as nbf
cells = []
def cell(kind, src, gid, grade=False, solution=False, locked=True, points=None):
    meta = {"nbgrader": {"grade": grade, "grade_id": gid, "locked": locked, "schema_version": 3, "solution": solution}}
    if points is not None:
        meta["nbgrader"]["points"] = points
    c = (nbf.v4.new_markdown_cell if kind == "md" else nbf.v4.new_code_cell)(src.strip("\n"), metadata=meta)
    cells.append(c)

cell("md", r"""
# Lab 14: a verifier, pass@k and the groups that teach nothing

**What you practise** (chapter 17): the checker that replaces a reward model in RL with verifiable rewards, with every failure sorted into a class; the unbiased estimator of pass@k from n samples; and the share of GRPO groups whose rewards have no spread, which give no policy-gradient signal (only a KL term moves the policy on them, if the run has one).

**Time**: about 30 minutes.

**How to check your work**: write your code where it says `# YOUR CODE HERE` (delete the `raise NotImplementedError(...)` line, which names the part and the function to write) and run the test cell under it; a failing test says what it expected and gives a hint. *Validate* runs every test; hidden tests check more when the lab is graded.

Points: part 1 — 4, part 2 — 3, part 3 — 3 (10 in all).
""", "intro")

cell("code", r"""
import math
import re

from course_utils.reasoning.tasks import make_reasoning_data

data = make_reasoning_data(seed=0, n_train=200, n_test=20, n_longer=5)
row = data["test"][0]
print(row["prompt"])
print(row["response"])
STEP = re.compile(r"([A-Z][a-z]{1,15}) and ([A-Z][a-z]{1,15}) swap: ([A-Z][a-z]{1,15}) has it\.")
FINAL = re.compile(r"Answer:\s*([A-Z][a-z]{1,15}\b)?(\.?)(.*)$", re.S)
""", "setup")

cell("md", r"""
## Part 1 (4 points): the verifier

Write `classify(response, answer)` returning one of six class names. Strip the response of white space at both ends first, then decide in this order (every match is case-sensitive: `"answer:"` is not `"Answer:"`):

1. no `"Answer:"` anywhere: `"no_answer"`;
2. `"Answer:"` more than once: `"extra_text"`;
3. match `FINAL` at the first `"Answer:"`: group 1 is the name, a capital letter and 1 to 15 small ones (None if what follows is not such a name, so `"B"` is not one). No name: `"bad_answer"`;
4. anything but white space after the name and its optional full stop (group 3, stripped): `"extra_text"`;
5. the text before `"Answer:"` must be zero or more step sentences: match `STEP` at its start again and again, stripping white space between them; if anything is left: `"bad_steps"`. Steps are checked by their pattern only, not against the problem's swaps;
6. otherwise `"correct"` if the name equals `answer`, else `"wrong_answer"`.

Any string must give a class; none may raise.
""", "part1-text")

cell("code", r"""
def classify(response, answer):
    ### BEGIN SOLUTION
    text = response.strip()
    where = text.find("Answer:")
    if where < 0:
        return "no_answer"
    if text.count("Answer:") > 1:
        return "extra_text"
    m = FINAL.match(text[where:])
    name, rest = m.group(1), m.group(3).strip()
    if name is None:
        return "bad_answer"
    if rest:
        return "extra_text"
    before = text[:where].strip()
    while (s := STEP.match(before)):
        before = before[s.end():].lstrip()
    if before:
        return "bad_steps"
    return "correct" if name == answer else "wrong_answer"
    ### END SOLUTION
""", "classify", solution=True, locked=False)

cell("code", r"""
worked = row["response"]
holder = row["answer"]
assert classify(worked, holder) == "correct", "the task's own worked answer is correct"
assert classify(f"Answer: {holder}.", holder) == "correct", "a direct answer with the right name is correct"
assert classify("Answer: Zed.", holder) == "wrong_answer", "a well-formed answer with another name is wrong_answer"
assert classify(worked.rsplit(" Answer:", 1)[0], holder) == "no_answer", "steps cut before the answer: no_answer"
assert classify("Answer: nobody", holder) == "bad_answer", "no capitalised name after Answer: is bad_answer"
assert classify(f"Answer: {holder}. Answer: {holder}.", holder) == "extra_text", "two answers: extra_text"
assert classify(f"I think so. Answer: {holder}.", holder) == "bad_steps", "text that is not a step before the answer"
assert classify("", holder) == "no_answer", "an empty string has no answer"
print("classify passes the visible tests")
### BEGIN HIDDEN TESTS
from course_utils.reasoning.verifier import verify
hidden = [worked, f"  Answer:{holder}  ", f"Answer: {holder}", f"Answer: {holder}!", "Answer:", "answer: Ben.",
          worked.replace(" swap:", " swapped:"), worked + " Thanks.", f"{worked} Answer: {holder}.",
          f"Mia and Tom swap: Tom has it.  Answer: {holder}.", "Answer: Ben. Answer: Sam.", "\n\n", "Answer: B.",
          "Mia and Tom swap: Tom has it. Answer: Mia.", "Answer: Mia and Tom.", "Answer: Mia.\n"]
for reply in hidden:
    assert classify(reply, holder) == verify(reply, holder).label, "hidden: classify must give verify's class for this answer"
for r in data["test"]:
    assert classify(r["response"], r["answer"]) == "correct", "hidden: every worked answer of the test split"
### END HIDDEN TESTS
""", "test_classify", grade=True, points=4)

cell("md", r"""
## Part 2 (3 points): pass@k from n samples

A problem was answered n times and c of the answers were right. Write `pass_at_k(n, c, k)`, the chance that k answers drawn without replacement from those n include a right one:

  pass@k = 1 − C(n − c, k) / C(n, k)

First check the arguments: raise `ValueError` unless 0 ≤ c ≤ n and 1 ≤ k ≤ n. Then, when n − c < k, every draw of k holds a right answer: return 1.0. Otherwise return the formula's value as a Python float. (`math.comb` computes C; for large n the product form 1 − ∏_{i=n−c+1}^{n} (1 − k / i) avoids huge numbers, and gives the same value.)
""", "part2-text")

cell("code", r"""
def pass_at_k(n, c, k):
    ### BEGIN SOLUTION
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong
    ### END SOLUTION
""", "pass_at_k", solution=True, locked=False)

cell("code", r"""
assert abs(pass_at_k(10, 2, 1) - 0.2) < 1e-12, "pass@1 is the share right"
assert abs(pass_at_k(10, 2, 2) - 17 / 45) < 1e-12, "n=10, c=2, k=2: 1 - C(8,2)/C(10,2)"
assert pass_at_k(10, 0, 5) == 0.0, "no right answer: 0"
assert pass_at_k(10, 6, 5) == 1.0, "fewer wrong answers than k: 1"
try:
    pass_at_k(5, 6, 1)
except ValueError:
    pass
else:
    raise AssertionError("c > n must raise ValueError")
try:
    pass_at_k(5, 1, 6)
except ValueError:
    pass
else:
    raise AssertionError("k > n must raise ValueError (check the arguments before anything else)")
print("pass_at_k passes the visible tests")
### BEGIN HIDDEN TESTS
from course_utils.reasoning.scaling import pass_at_k as reference
for n, c, k in [(64, 3, 8), (256, 17, 100), (1000, 1, 999), (7, 7, 7), (64, 0, 64), (3, 1, 2)]:
    assert abs(pass_at_k(n, c, k) - reference(n, c, k)) < 1e-9, "hidden: pass_at_k for a larger n, c and k"
for n, c, k in [(5, 2, 0), (5, 2, 6), (5, -1, 1)]:
    try:
        pass_at_k(n, c, k)
    except ValueError:
        pass
    else:
        raise AssertionError("hidden: k = 0, k > n and c < 0 must raise ValueError")
### END HIDDEN TESTS
""", "test_pass_at_k", grade=True, points=3)

cell("md", r"""
## Part 3 (3 points): groups with no spread

GRPO samples G answers per problem and uses the group as its own baseline, so a group whose rewards are all equal gives no policy-gradient signal: every advantage in it is 0. Write `zero_spread_share(rewards, group_size)`: `rewards` is a list of floats, group by group (the first `group_size` belong to the first problem, and so on). Return the share of groups (a Python float) whose rewards are all equal. Raise `ValueError` when `rewards` is empty, when `group_size < 2`, or when the rewards do not split into groups of `group_size`.
""", "part3-text")

cell("code", r"""
def zero_spread_share(rewards, group_size):
    ### BEGIN SOLUTION
    if group_size < 2:
        raise ValueError("a group needs at least two answers")
    if not rewards or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    groups = [rewards[i:i + group_size] for i in range(0, len(rewards), group_size)]
    return sum(len(set(g)) == 1 for g in groups) / len(groups)
    ### END SOLUTION
""", "zero_spread_share", solution=True, locked=False)

cell("code", r"""
assert zero_spread_share([1, 1, 0, 1, 0, 0, 0, 0], 4) == 0.5, "the second group is all 0"
assert zero_spread_share([1.0, 0.0, 0.5, 0.5], 2) == 0.5, "a group of two equal rewards has no spread"
try:
    zero_spread_share([1, 0, 1], 2)
except ValueError:
    pass
else:
    raise AssertionError("3 rewards do not split into groups of 2: ValueError")
print("zero_spread_share passes the visible tests")
### BEGIN HIDDEN TESTS
import random
rng = random.Random(7)
for g in (2, 3, 8):
    rewards = [float(rng.random() < 0.8) for _ in range(g * 25)]
    want = sum(len(set(rewards[i:i + g])) == 1 for i in range(0, len(rewards), g)) / 25
    assert abs(zero_spread_share(rewards, g) - want) < 1e-12, "hidden: 25 random groups of 2, 3 and 8"
for args in [([], 4), ([1.0, 1.0], 1)]:
    try:
        zero_spread_share(*args)
    except ValueError:
        pass
    else:
        raise AssertionError("hidden: no rewards, or groups of one, must raise ValueError")
### END HIDDEN TESTS
""", "test_zero_spread_share", grade=True, points=3)

cell("md", r"""
## Where next

`course_utils.reasoning.verifier.verify` is the same checker, `course_utils.reasoning.scaling.pass_at_k` the same estimator, and chapter 11's GRPO logs the share of groups with no spread as `zero_std_groups`. Chapter 17 uses all three: its section 6 plots pass@k from this estimator, and its exercise 2 compares the logged share of groups with no spread with p^G + (1 − p)^G.
""", "outro")

nb = nbf.v4.new_notebook()
nb["cells"] = cells
nb["metadata"] = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                  "language_info": {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                                    "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                                    "pygments_lexer": "ipython3", "version": "3.11.7"}}
import os
os.makedirs("/work/main/solutions/lab14_verifiable_rewards", exist_ok=True)
nbf.write(nb, "/work/main/solutions/lab14_verifiable_rewards/lab14_verifiable_rewards.ipynb")
print("written")
