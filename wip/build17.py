# Draft builder of chapter 17 (RL with verifiable rewards). Prose marked [[N]] needs the sweep's
# numbers (the sweep `rlvr` must be stored first); every number in prose must be an output.
import nbformat as nbf
nb = nbf.v4.new_notebook()
C = []
def md(s): C.append(nbf.v4.new_markdown_cell(s.strip("\n")))
def code(s, folded=False):
    meta = {"tags": ["hide-output"], "jupyter": {"outputs_hidden": True}} if folded else {}
    C.append(nbf.v4.new_code_cell(s.strip("\n"), metadata=meta))

md(r"""
# Chapter 17 — Verifiable rewards: reasoning learned from a checker

Since late 2024, much of the post-training of reasoning models has used **checkers** instead of reward models: RL with verifiable rewards (RLVR, named in Tülu 3; Lambert et al., 2024). DeepSeek-R1-Zero (DeepSeek-AI, 2025) was trained with GRPO (chapter 11; Shao et al., 2024) on math and code problems whose answers a program can check, with two rewards: one for a right answer, one for the right format (reasoning between `<think>` tags, then the answer). Its answers grew longer as its reward rose, and the paper read the longer answers as the model learning to reason. Later work asked what RL of this kind really adds: whether it teaches new abilities or only makes the model pick what it could already do (Yue et al., 2025, with pass@k), why answers grow long (Liu et al., 2025, Dr. GRPO), and how the entropy of the model's samples limits what RL can still find (Cui et al., 2025).

Those studies ran on many GPUs, and most report one run per setting, without intervals over seeds. The tiny world can show analogues of their effects on a laptop, with seeds and intervals, because its answers are exactly checkable. It can also show where the tiny world differs.

| section | what |
|---|---|
| 1 | *who has the ball?*: a task where writing the steps down helps |
| 2 | the verifier: a reward from a program, and every failure sorted into a class |
| 3 | the start: a model that writes either way |
| 4 | RL with the verifier's reward (live, seed 0) |
| 5 | over seeds: what RL changed, and how |
| 6 | pass@k: does RL find answers the start could not? |
| 7 | rewards: correctness, format, both; GRPO, Dr. GRPO and expert iteration |
| 8 | test-time compute: majority vote against RL |
| 9 | what the tiny world does not show |

The code lives in `course_utils.reasoning`: `tasks` (the problems), `verifier` (the checks and the rewards), `evaluation` (SFT on the task and reports), `rlvr` (the reward, the log and the settings for chapter 11's GRPO), `scaling` (pass@k and majority vote). RL here is chapter 11's GRPO, the same loop.
""")

code(r"""
import matplotlib.pyplot as plt
import numpy as np

from course_utils.dashboard import RunDashboard
from course_utils.evaluation.uncertainty import mean_ci
from course_utils.experiments import load
from course_utils.models import load_model
from course_utils.reasoning.evaluation import style_report
from course_utils.reasoning.tasks import make_reasoning_data
from course_utils.reasoning.verifier import correctness_reward, format_reward, step_reward, verify
from course_utils.training import set_seed

set_seed(0)
data = make_reasoning_data(seed=0, n_rl=3000)
for name, split in data.items():
    print(f"{name:12s} {len(split):5d} problems, {min(split['n_swaps'])} to {max(split['n_swaps'])} swaps")
""")

md(r"""
## 1. Who has the ball?

Four children pass a thing around by swapping what they hold; the question is who holds it at the end. A **worked** answer follows the swaps one sentence at a time. A **direct** answer gives only the name.
""")

code(r"""
row = data["test"][0]
print(row["prompt"])
print("\nworked:", row["response"])
print("direct:", f"Answer: {row['answer']}.")
""")

md(r"""
Each worked sentence copies the next swap and applies one rule to the holder named just before it. A direct answer must follow every swap inside one forward pass of a 4-layer model. The sweep `reasoning_sft` fine-tuned the shipped SFT model on each style for 900 steps, over 5 seeds, and checked greedy answers to problems whose swap patterns it never trained on:
""")

code(r"""
sft_sweep = load("reasoning_sft")
for arm in ("worked", "direct"):
    s = sft_sweep.summary("accuracy", arm=arm, split="test", step=900)[None]
    print(f"{arm:6s} answers, held-out accuracy after 900 steps: {s.fmt(3)}")
print("a guess among the four children: 0.25")
""")

md(r"""
Worked answers win by a wide margin: 0.836 against 0.258, and 0.258 is what guessing among the four children gives. (The worked answers' interval, 0.667 to 1.005, is a t interval over 5 seeds; it passes 1 because the seeds spread widely.) So writing the steps down is what lets this model solve the task, and RL can only help it if the steps are there to be found.

## 2. The verifier

RL with verifiable rewards replaces the reward model by a program. `verify` sorts every answer into exactly one class: right, wrong name, or one of four format failures (CS336's `math_baseline` exercise sorts a model's failures into coarser classes of the same kind). Each reward is a function of the answer and the problem, and none raises on any string. A "name" is only a pattern, a capital letter and small ones, so "Nobody" is a wrong name while "nobody" is no name at all.
""")

code(r"""
answers = [row["response"], f"Answer: {row['answer']}.", "Answer: Nobody.", "Answer: nobody.",
           f"I think so. Answer: {row['answer']}.", row["response"].replace("Answer:", "Answer: Sam. Answer:"),
           row["response"].rsplit(" Answer:", 1)[0]]
for a in answers:
    v = verify(a, row["answer"])
    print(f"{v.label:12s} correct {correctness_reward(a, row):.0f}  format {format_reward(a):.0f}  "
          f"steps {step_reward(a, row):.2f}   {a[:60]}{'...' if len(a) > 60 else ''}")
""")

md(r"""
## 3. The start: a model that writes either way

R1-Zero started from a base model that could already write its reasoning when asked. Our start is the shipped `reasoning` model: the SFT model fine-tuned for 900 steps on problems of which half came with worked answers and half with direct ones. It writes either style and picks one at its first token. `style_report` samples 4 answers per problem at temperature 1 and splits them by style.
""")

code(r"""
start, tok = load_model("reasoning")
test = list(data["test"])[:100]
before = style_report(start, tok, test)
for k, v in before.items():
    print(f"{k:16s} {v:.3f}")
""")

md(r"""
About half of its answers are worked (0.502), and those are right far more often than the direct ones: 0.786 against 0.166. Nothing in the reward will tell the model which style to use: the verifier reads only the name after "Answer:".

## 4. RL with the verifier's reward (live)

`rlvr_config` holds the course's settings for chapter 11's GRPO here: 16 problems a step, 8 answers each at temperature 1, learning rate 1e-4 with a warm-up and a decay, one update per batch, no KL penalty (as Dr. GRPO and DAPO). The problems come from the `rl` split: 3,000 problems the model never trained on; the reward reads only the name after "Answer:". The plot shows the reward (the share right), the answers' length, the token entropy and the share of groups with no spread (all right or all wrong: no gradient).
""")

code(r"""
from course_utils.alignment.grpo import train_grpo
from course_utils.reasoning.rlvr import rlvr_config, verifier_log, verifier_reward

pool = list(data["rl"])
policy, _ = load_model("reasoning")
board = RunDashboard("RLVR from the reasoning start", panels=(("reward", "format_rate"), ("length", "length_right", "length_wrong"),
                                                          ("entropy",), ("zero_std_groups",)))
result = train_grpo(policy, start, tok, pool, rlvr_config(steps=20, seed=0), reward_fn=verifier_reward(pool),
                    log_fn=verifier_log(pool, tok), dashboard=board)
after = style_report(policy, tok, test)
print(f"{'':16s} {'start':>7s} {'after RL':>9s}")
for k in before:
    print(f"{k:16s} {before[k]:7.3f} {after[k]:9.3f}")
""")

md(r"""
In 20 steps the share of worked answers went from 0.502 to 0.953, and pass@1 on held-out problems from 0.477 to 0.748. The answers grew longer as the reward rose (the second panel), as R1-Zero's did. Here we can see why: the long answers are the worked ones, and those are the ones that are right. Look at `accuracy_worked` too: 0.786 before, 0.780 after. RL chose the style that pays; in 20 steps it did not make the steps better.

The dashboard's warning is about entropy: by step 5 the mean token entropy had fallen from 0.056 to 0.042 nats. The policy is settling on one answer per prompt, and what it no longer samples, RL can no longer reward. Section 5 follows the entropy to the end over 5 seeds.

This is one seed. The next sections ask the same questions over 5 seeds.
""")

md(r"""
## 5. Over seeds: what RL changed

The sweep `rlvr` ran the live cell's RL from the same start with 5 seeds (each seed draws other problems and other samples; the start is one model, so the intervals are over RL runs from it, not over starts). It measured 100 held-out problems x 4 answers before and after.
""")

code(r"""
sweep = load("rlvr")
print(f"rlvr: {len(sweep.seeds)} seeds, {sweep.wall_s / 60:.0f} minutes in all; mean [95% interval over seeds]")
KEYS = ("pass1", "worked_share", "accuracy_worked", "accuracy_direct", "format_rate")
for arm in ("start", "correct"):
    print(f"  {arm:8s} " + "   ".join(f"{k} {sweep.summary(k, kind='final', arm=arm)[None].fmt(3).rsplit(' (', 1)[0]}" for k in KEYS))
""")

md(r"""
The live run's story holds over seeds: pass@1 rose from 0.457 to 0.730, worked answers went from 0.501 of all answers to 0.942, and the worked answers' own accuracy was 0.766 before and after (intervals [0.749, 0.782] and [0.742, 0.791]). The direct answers did not get better either (0.146 before, 0.137 after), and after RL they are few.

### Does the answer lengthen as the reward rises?

R1-Zero's best-known plot is its answer length climbing through training. Here are ours, step by step over 5 seeds: the reward, the mean length of the sampled answers and the token entropy.
""")

code(r"""
steps = sorted({r["step"] for r in sweep.select(kind="step", arm="correct")})
def curve(metric, arm="correct"):
    '''(steps, seeds) array of a logged column; NaN where a step logged none (e.g. no wrong answer)'''
    return np.array([[r.get(metric, np.nan) for r in sweep.select(kind="step", arm=arm, step=s)] for s in steps])
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for ax, (metric, label) in zip(axes, [("reward", "reward (share right)"), ("length", "answer tokens"),
                                      ("entropy", "token entropy (nats)")]):
    values = curve(metric)
    ax.plot(steps, values.mean(1), color="C0")
    ax.fill_between(steps, values.min(1), values.max(1), alpha=0.2, color="C0")
    ax.set_xlabel("step"); ax.set_title(label)
fig.suptitle("GRPO with the correctness reward: mean over 5 seeds (band: min to max)")
fig.tight_layout(); plt.show()
for metric, unit, digits in (("reward", "", 3), ("length", " tokens", 1), ("entropy", " nats", 3)):
    values = curve(metric)
    print(f"mean {metric}, step 1: {values[0].mean():.{digits}f}{unit}; last step: {values[-1].mean():.{digits}f}{unit}")
""")

md(r"""
Length rose with the reward, from 39.9 tokens at step 1 to 69.9 at the last, while the reward went from 0.427 to 0.708: R1-Zero's curve, in shape. In the tiny world the cause is plain: a worked answer is several sentences and a direct one is three words, and the worked one is right far more often, so choosing it raises both. Large models' long answers need not come only from such a choice; Liu et al. (2025) attribute part of the growth, in wrong answers, to GRPO's per-answer mean (section 7). Meanwhile the entropy fell from 0.063 to 0.022 nats: the collapse the dashboard warned about, in every seed.

### Entropy and the entropy–performance law

Cui et al. (2025) found that the validation performance R of RLVR runs follows the entropy H of the policy as R = -a e^H + b: performance is bought with entropy, and once the entropy is spent it stops rising. They fit a and b on the early part of a run and predicted its end. We try the same with the *training* reward (the share right of the sampled answers), which the sweep logs at every step: fit on the first quarter of the steps (5 of 20, over all seeds) and compare the prediction at the last step's entropy with what happened. Two limits before we look: those 5 steps are the warm-up, while the learning rate still rises; and at entropies this small, e^H is close to 1 + H, so the law cannot be told apart from a straight line in H.
""")

code(r"""
H, R = curve("entropy"), curve("reward")
n_fit = max(2, len(steps) // 4)
X = np.column_stack([-np.exp(H[:n_fit].ravel()), np.ones(H[:n_fit].size)])
(a, b), *_ = np.linalg.lstsq(X, R[:n_fit].ravel(), rcond=None)
predicted = -a * np.exp(H[-1].mean()) + b
print(f"fit on steps 1-{n_fit}: R = -a e^H + b with a = {a:.2f}, b = {b:.2f}")
print(f"entropy in the fit: {H[:n_fit].min():.4f} to {H[:n_fit].max():.4f} nats")
print(f"last step: entropy {H[-1].mean():.4f}, reward predicted {predicted:.3f}, measured {R[-1].mean():.3f} "
      f"(seeds {R[-1].min():.3f} to {R[-1].max():.3f})")
""")

md(r"""
Not reproduced in this form. Fitted on the 5 warm-up steps, the law predicts a reward of 0.632 at the last step's entropy; the measured mean was 0.708, and every seed ended above the prediction (0.664 to 0.828). The fit rests on 5 steps of 5 seeds, with entropies only between 0.0415 and 0.0675 nats, where e^H is nearly a straight line, and on steps whose learning rate was still rising; a law fitted there has little to extrapolate from. What the tiny world does show is the law's qualitative half: the reward rose as the entropy fell (the curves above).

## 6. pass@k: does RL find answers the start could not?

pass@k is the chance that at least one of k answers is right. From n ≥ k samples of which c are right, `course_utils.reasoning.scaling.pass_at_k` computes the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al., 2021). Yue et al. (2025) compared such curves for a model before and after RLVR, up to k = 256, and found that RL wins at small k while the model before RL catches up and overtakes it at large k: RL made the model pick its good answers more often, not find answers it could not find before.

The sweep sampled 64 answers to each of 50 held-out problems from the start and from the RL model of every seed. With four children to name, a guess is right one time in four, so plain pass@k saturates quickly; the second panel counts only answers that are right *and* worked (at least one step sentence before the answer).
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, metric, title in zip(axes, ("pass_at_k", "pass_at_k_worked"), ("any right answer", "right worked answers only")):
    for arm, color in (("start", "C7"), ("correct", "C0")):
        ks = sorted({r["k"] for r in sweep.select(kind="passk", arm=arm)})
        stats = [sweep.summary(metric, kind="passk", arm=arm, k=k)[None] for k in ks]
        ax.errorbar(ks, [s.value for s in stats], yerr=[[s.value - s.lo for s in stats], [s.hi - s.value for s in stats]],
                    marker="o", capsize=3, color=color, label="start" if arm == "start" else "after RL")
    ax.set_xscale("log", base=2); ax.set_xlabel("k"); ax.set_title(title); ax.legend()
axes[0].set_ylabel("pass@k (mean, 95% interval over seeds)")
fig.tight_layout(); plt.show()
print("right worked answers, mean [95% interval over seeds]; the difference is paired by seed")
for k in ks:
    s0 = sweep.values("pass_at_k_worked", kind="passk", arm="start", k=k)
    s1 = sweep.values("pass_at_k_worked", kind="passk", arm="correct", k=k)
    print(f"k={k:3d}  start {mean_ci(s0).fmt(3).rsplit(' (', 1)[0]}  after RL {mean_ci(s1).fmt(3).rsplit(' (', 1)[0]}  "
          f"RL minus start {mean_ci(np.subtract(s1, s0)).fmt(3).rsplit(' (', 1)[0]}")
""", folded=False)

md(r"""
RL wins clearly at small k: 0.705 against 0.389 at k = 1, and still 0.102 more at k = 4. At k = 8 the difference is 0.015 and its interval includes 0. From k = 16 on the start's mean is the higher (RL minus start: -0.004 at k = 16, -0.005 at k = 32, -0.004 at k = 64), but every one of those intervals includes 0. So the shape of Yue et al.'s result is here: RL's lead shrinks to nothing as k grows, and at large k the start does at least as well. Its crossing is not established with 5 seeds and 50 problems, and k stops at 64, below their 256. With four names to choose from, plain pass@k (left) saturates long before that.
""")
md(r"""
## 7. Which reward, which loss

Five more arms ran from the same start with the same seeds and steps:

| arm | what changes |
|---|---|
| `format` | the format reward alone: 1 for a well-formed answer, whatever the name (R1-Zero's second reward, alone) |
| `both` | correctness + 0.2 × format, rescaled to [0, 1] |
| `grpo_mean` | the GRPO paper's loss: each answer's tokens averaged first, then the answers (short answers weigh more per token) |
| `dr_grpo` | Dr. GRPO (Liu et al., 2025): a constant denominator and no division by the group's standard deviation (two changes) |
| `expert` | expert iteration at the same number of samples, in the spirit of STaR (Zelikman et al., 2022) and RAFT (Dong et al., 2023): keep the right answers and raise their likelihood, one update per batch; no baseline, no answer given a negative weight |
""")

code(r"""
ARMS = ("start", "correct", "format", "both", "grpo_mean", "dr_grpo", "expert")
print(f"{'arm':10s} " + " ".join(f"{k:>22s}" for k in ("pass1", "worked_share", "accuracy_worked")))
for arm in ARMS:
    cells = [sweep.summary(k, kind="final", arm=arm)[None].fmt(3).rsplit(" (", 1)[0] for k in ("pass1", "worked_share", "accuracy_worked")]
    print(f"{arm:10s} " + " ".join(f"{c:>22s}" for c in cells))
""")

md(r"""
- **Format alone hurt.** pass@1 fell from 0.457 to 0.291 and worked answers from 0.501 to 0.337 of all answers (exercise 1 asks why).
- **Format beside correctness changed nothing measurable** here: 0.738 against 0.730, with overlapping intervals. The start already keeps the format, so the extra reward has almost nothing to add.
- **The loss variants tie.** The per-answer mean (0.729), Dr. GRPO (0.731) and the default (0.730) end within each other's intervals on pass@1.
- **Expert iteration matched GRPO** at the same number of samples: 0.745 against 0.730. Keeping the right answers and imitating them is enough when what RL learns is a choice of style; pushing the wrong ones down added nothing measurable in 20 steps.

### Long wrong answers: GRPO's per-answer mean against Dr. GRPO

Liu et al. (2025) argue that GRPO's per-answer mean, 1/|o|, pushes a long wrong answer down less per token than a short one, so wrong answers drift longer, and that part of the length growth reported for R1-Zero-like runs comes from this bias. The contrast that isolates the aggregation is `grpo_mean` (per answer) against `correct` (the course's default, per token over the batch); `dr_grpo` also drops the division by the standard deviation. The tiny world can check the length of the *wrong* answers under each.
""")

code(r"""
fig, ax = plt.subplots(figsize=(6, 3))
for arm, color in (("grpo_mean", "C3"), ("dr_grpo", "C2"), ("correct", "C0")):
    values = curve("length_wrong", arm)
    ax.plot(steps, np.nanmean(values, 1), color=color, label=arm)
ax.set_xlabel("step"); ax.set_ylabel("tokens"); ax.set_title("mean length of the wrong answers (5 seeds)"); ax.legend()
plt.show()
print(f"wrong answers' length at step 1: {np.nanmean(curve('length_wrong', 'correct')[0]):.1f} tokens (the same start for every arm)")
last = {arm: curve("length_wrong", arm)[-1] for arm in ("grpo_mean", "dr_grpo", "correct")}
for arm, values in last.items():
    print(f"{arm:10s} wrong answers' length at the last step: {mean_ci(values[~np.isnan(values)]).fmt(1)}")
for other in ("dr_grpo", "correct"):
    diff = last["grpo_mean"] - last[other]
    print(f"grpo_mean minus {other}, paired by seed: {mean_ci(diff[~np.isnan(diff)]).fmt(1)}")
""")

md(r"""
The per-answer mean left the wrong answers longest: 70.4 tokens at the last step, against 65.8 under Dr. GRPO and 64.0 under the default. Against the default the paired difference is 6.3 tokens [0.7, 11.9]; against Dr. GRPO it is 4.6 [-0.2, 9.4], an interval that just includes 0. The direction is Liu et al.'s; its size here is a few tokens. Most of the growth has another cause: at step 1 the wrong answers were 21.9 tokens long, mostly direct ones, and by the end nearly every answer is worked, right or wrong.

## 8. Test-time compute: majority vote against RL

RL is not the only way to spend compute on answers. Self-consistency (Wang et al., 2023) samples n answers and answers with the most common name. Best-of-n with *this* checker would answer right whenever any of the n is right (that is pass@n), but the checker needs the true answer, which a deployed model does not have: pass@n is an upper bound, not a method. Majority vote needs no checker. It costs n answers at test time; RL costs training once and one answer after. The sweep counted the tokens.
""")

code(r"""
ns = sorted({r["n"] for r in sweep.select(kind="vote", arm="start")})
vote = [sweep.summary("majority", kind="vote", arm="start", n=n)[None] for n in ns]
tokens = [np.mean(sweep.values("tokens", kind="vote", arm="start", n=n)) for n in ns]
rl = sweep.summary("pass_at_k", kind="passk", arm="correct", k=1)[None]
rl_tokens = np.mean(sweep.values("tokens_per_answer", kind="passk", arm="correct", k=1))
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.errorbar(tokens, [v.value for v in vote], yerr=[[v.value - v.lo for v in vote], [v.hi - v.value for v in vote]],
            marker="o", capsize=3, label="start, majority of n")
ax.errorbar([rl_tokens], [rl.value], yerr=[[rl.value - rl.lo], [rl.hi - rl.value]], marker="s", color="C3", capsize=3,
            label="after RL, one answer")
ax.set_xscale("log"); ax.set_xlabel("sampled tokens per problem"); ax.set_ylabel("accuracy"); ax.legend()
plt.show()
for n, v, t in zip(ns, vote, tokens):
    print(f"majority of {n:2d}: {v.fmt(3)}   {t:7.0f} tokens per problem")
print(f"RL model, one answer: {rl.fmt(3)}   {rl_tokens:7.0f} tokens per problem")
for n, t in zip(ns, tokens):
    if n in (4, 8, 16):
        print(f"majority of {n:2d} costs {t / rl_tokens:.1f} times the RL model's tokens")
""")

md(r"""
The RL model's one answer (0.713, 55 tokens) beats the start's majority of 4 (0.640), which costs 2.3 times the tokens. The vote's mean passes it at n = 8 (0.780, 4.7 times the tokens), and its interval clears the RL model's at n = 16 (0.828 [0.806, 0.850], 9.4 times). RL's cost is paid once, in training; the vote's is paid on every problem. Here, 20 RL steps bought what a vote of 4 to 8 samples buys.

## 9. What the tiny world does not show

- **Reasoning that RL discovered.** The start could already write worked answers; RL chose them. R1-Zero's base model had never been fine-tuned to reason, and its long answers had to be found by sampling. The calibration in `docs/maintainers.md` shows why the tiny world starts elsewhere: from models trained on worked answers only, GRPO on a small pool of problems fitted those problems by their names and lost accuracy on new ones, and on the whole `rl` split it moved held-out accuracy by little more than noise.
- **Better steps.** In 20 steps the worked answers did not become more accurate (section 5). SFT needed 900 steps to teach this task (section 1).
- **One start.** Every seed starts from one model; another start (another draw of which answers were worked) gave a different pass@1 before and after (maintainers' notes, one run).
- **Small k.** pass@k stops at 64, and four names make guessing cheap.
""")

md(r"""
## Self-check
""")

code(r"""
from course_tools.selfcheck import quiz

quiz("17")
""")

md(r"""
## Exercises
""")
md(r"""
**1. Predict, then run: what does the format reward alone do?** (reading, 5 minutes). Nearly every answer of the start is well-formed. Before you look at section 7's `format` arm: will pass@1 rise, stay or fall, and will the share of worked answers rise, stay or fall? Why?
""")

code(r"""
prediction = ""   # e.g. "pass@1 falls, worked share falls: ..."
""")

code(r"""
for k in ("pass1", "worked_share", "format_rate"):
    print(f"{k:14s} start {sweep.summary(k, kind='final', arm='start')[None].fmt(3)}   "
          f"format reward {sweep.summary(k, kind='final', arm='format')[None].fmt(3)}")
print(f"answer length at the last step: {np.nanmean(curve('length', 'format')[-1]):.1f} tokens "
      f"(step 1: {np.nanmean(curve('length', 'format')[0]):.1f})")
if prediction:
    print("you predicted:", prediction)
""", folded=True)

md(r"""
<details><summary>Answer</summary>

pass@1 and the worked share fell, and the answers got shorter. A reward that every answer earns gives no signal: a group whose answers all score 1 has zero advantage. The only spread comes from the rare malformed answer, which is pushed down, and a long worked answer has more tokens in which to go wrong than "Answer: Ben.", so the signal leans towards the short, direct style, which is right less often. (The mechanism is a hypothesis; the shares and lengths are measured.) A format reward is useful beside correctness, when a model does not yet keep the format; alone it rewards the form, and the cheapest form wins.

</details>
""")

md(r"""
**2. Change and measure: how many samples per problem does a zero-spread group cost?** (notebook, 5 minutes). A group of G answers to a problem the model gets right with probability p has no spread, and so no policy-gradient signal, with probability p^G + (1 - p)^G (a 0/1 reward, independent samples). Change `GROUP_SIZE` and see what share of groups is wasted at the start's pass@1 and at the RL model's.
""")

code(r"""
GROUP_SIZE = 8
for name, p in (("start", before["pass1"]), ("after RL", after["pass1"])):
    print(f"{name:9s} p = {p:.3f}: share of groups with no spread (one problem, p fixed) {p ** GROUP_SIZE + (1 - p) ** GROUP_SIZE:.3f}")
""")

md(r"""
<details><summary>Answer</summary>

The formula assumes that every problem has the same p, which it does not: a problem the model always solves (p = 1) or never solves (p = 0) gives no spread at any G. f(p) = p^G + (1 - p)^G is convex, so the mean of f over problems is at least f at the mean p (Jensen's inequality): on average, a run wastes more groups than the formula says at its mean reward. The measured cell compares the two on the live run's last 5 steps, with p the mean reward of those same steps (80 groups, so the comparison is noisy). More answers per group waste fewer groups, but each step then costs more samples; DAPO's dynamic sampling (`GRPOConfig.dynamic_sampling`) draws more problems instead and keeps only the groups with a spread.

</details>
""")

code(r"""
last = result.history[-5:]
p = np.mean([h["reward"] for h in last])
for g in (2, 4, 8, 16):
    print(f"G = {g:2d}: formula at the last 5 steps' mean reward p = {p:.3f}: {p ** g + (1 - p) ** g:.3f}")
print(f"the live run's logged zero_std_groups over those steps (G = 8): {np.mean([h['zero_std_groups'] for h in last]):.3f}")
""", folded=True)

md(r"""
**3. Derive: the unbiased pass@k estimator** (paper, 10 minutes). A problem was answered n times and c answers were right. Show that 1 - C(n-c, k) / C(n, k) is the chance that k answers drawn without replacement from those n include a right one, and that its expectation over the n samples equals the true pass@k = 1 - (1 - p)^k. Then say why 1 - (1 - c/n)^k, the plug-in estimate, is biased, and in which direction.
""")

md(r"""
<details><summary>Answer</summary>

Draw k of the n answers without replacement. All C(n, k) subsets are equally likely; those with no right answer are the C(n-c, k) subsets of the n - c wrong ones. So the chance of at least one right answer is 1 - C(n-c, k)/C(n, k). For the expectation: think of the n answers as n independent draws and the k-subset as k of them chosen at random; k independent draws contain no right answer with probability (1 - p)^k, whichever k are chosen, so the expectation of the estimator is 1 - (1 - p)^k. The plug-in estimate 1 - (1 - p̂)^k with p̂ = c/n applies a concave function (x ↦ 1 - (1 - x)^k) to an unbiased estimate of p, so by Jensen's inequality its expectation is at most the true pass@k: it underestimates, most at small n and large k. With c = 0 both give 0; with n = k the unbiased estimator is 1 whenever c ≥ 1.

</details>
""")

md(r"""
**4. Explain this output: the worked answers did not get better** (reading, 5 minutes). In section 5, pass@1 rose a lot, but `accuracy_worked`, the share right among worked answers, stayed where it was. Explain how both can be true, and what it says about what RL learned in 20 steps.
""")

md(r"""
<details><summary>Answer</summary>

pass@1 is a mixture: worked share × accuracy of worked answers + direct share × accuracy of direct ones. RL moved the mixture weight, from about half worked answers to nearly all, and the worked answers' accuracy did not rise. (After RL so few answers are direct that their accuracy says little.) One decision, made at the first token and shared by every problem, carries the whole gain. Learning better steps would mean changing how the model applies the swap rule inside each step, a skill that SFT needed about a thousand steps of demonstrations to learn; in 20 RL steps, with one or two deciding tokens per answer, RL did not change it measurably. This is the tiny world's version of Yue et al.'s reading: RL here made the model use more often what it could already do.

</details>
""")

md(r"""
## What this chapter measured, and its limits

Every row is the sweep `rlvr`: 5 RL seeds from one start, 20 steps each, mean [95% interval over seeds].

| published effect | here | verdict |
|---|---|---|
| RLVR raises pass@1 (R1-Zero) | 0.457 to 0.730; right worked answers at k = 1: +0.316 [0.308, 0.323] | reproduced |
| answers lengthen as the reward rises (R1-Zero) | 39.9 to 69.9 tokens | reproduced, through a change of style |
| entropy collapses (Cui et al.) | 0.063 to 0.022 nats | reproduced |
| R = -a e^H + b, fitted early, predicts the end (Cui et al.) | predicted 0.632, measured 0.708 | not reproduced (fitted on warm-up steps) |
| the model before RL catches up at large k (Yue et al.) | RL minus start: +0.015 [-0.008, 0.038] at k = 8, -0.004 [-0.015, 0.007] at k = 64 | catch-up reproduced; overtaking not established |
| wrong answers grow longer under the per-answer mean (Liu et al.) | +6.3 [0.7, 11.9] tokens against the default, +4.6 [-0.2, 9.4] against Dr. GRPO | direction reproduced, a few tokens |
| format reward alone | pass@1 0.291, below the start | a format reward alone rewards the form |
| majority vote at equal compute (Wang et al.) | the vote needs 4 to 8 samples to match one RL answer | RL is cheaper per problem |
| expert iteration against GRPO | 0.745 against 0.730 | a tie at these samples |

The limits of these findings:
- **One start.** The seeds vary RL, not the model it starts from; another start gave other numbers (section 9).
- **20 steps.** Longer runs might improve the steps themselves, or collapse further; this chapter did not run them.
- **One task**, with four possible answers, where the decision RL learns is a style chosen at the first token. What holds here is a mechanism the papers discuss, shown in a world small enough to measure it; it is not evidence about large models.
""")

nb["cells"] = C
nb["metadata"] = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                  "language_info": {"name": "python"},
                  "prose_check": {"declared": {
                      "1e-4": "setting: rlvr_config's learning rate (course_utils.reasoning.rlvr)",
                      "256": "quoted: the largest k of Yue et al. (2025)",
                      "50": "setting: n_passk of the sweep rlvr, the held-out problems sampled for pass@k",
                      "80": "arithmetic: 5 steps x 16 groups (rlvr_config's prompts_per_step)"}}}
import os
nbf.write(nb, os.environ.get("OUT", "/work/main/chapters/17_verifiable_rewards.ipynb"))
