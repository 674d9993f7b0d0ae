"""The chapters' self-check questions (shown with :func:`quiz`, graded by :mod:`course_utils.selfcheck`).

Each chapter ends with ``quiz("NN")``. A question about a formula gives the numbers it needs;
a question about a chapter's result asks about the idea that explains it, not a printed number
(those live in the chapter's outputs and exercises).
"""

from __future__ import annotations

from .selfcheck import Choice, Question, SelfCheck

QUESTIONS: dict[str, list[Question]] = {
    "04": [
        Question("The source's example calls loss.backward() in its loop but never optimizer.step(). "
                 "What does model.save_pretrained then save?", choices=[
                     Choice("The weights it loaded, unchanged", True,
                            "backward() only fills each parameter's .grad; nothing applies the gradients, "
                            "so the weights are the ones from_pretrained loaded (section 1 counted 0 changed tensors)."),
                     Choice("The weights after one update per epoch", False,
                            "An update needs optimizer.step() (or a manual p -= lr * p.grad); the example has neither."),
                     Choice("The accumulated gradients instead of the weights", False,
                            "save_pretrained writes the parameters, never their .grad."),
                 ]),
        Question("Why are the padded positions of the labels set to -100?", choices=[
            Choice("Cross-entropy skips targets equal to -100, so padding adds no loss and no gradient", True,
                   "-100 is the default ignore_index of PyTorch's cross_entropy, which Transformers' "
                   "models use: those positions are left out of the mean."),
            Choice("-100 is the id of the padding token", False,
                   "The pad token has an ordinary id in the vocabulary; -100 is not a token id at all, "
                   "which is why it can mark 'no target'."),
            Choice("So that the model learns to write padding after its answer", False,
                   "The opposite: the model should stop with its end-of-text token, never learn to pad."),
        ]),
        Question("The 200-step SFT run and seed 0 of chapter 03's sweep, run in another process on another day, "
                 "printed the same numbers to the third decimal. What makes that possible?", choices=[
                     Choice("The same code with the same seed and settings does the same arithmetic", True,
                            "set_seed fixes the new weights and the batch order; on one machine with the same "
                            "thread count, CPU arithmetic repeats exactly."),
                     Choice("The sweep stored the model this notebook trained", False,
                            "The sweep ran on its own (python -m course_utils.experiments) and stores only "
                            "numbers, never models."),
                     Choice("Exact match on 40 items per task is too coarse to differ", False,
                            "The response loss in chapter 03 matched to the third decimal as well; a different "
                            "model would show it there."),
                 ]),
        Question("A batch of 32 examples is right-padded to its longest example, 40 tokens. The examples "
                 "average 20 tokens. What fraction of the batch's positions is padding?",
                 answer=0.5, tolerance=0.01,
                 why="32 x 40 = 1,280 positions hold 32 x 20 = 640 real tokens, so 640 / 1,280 = 0.5 are "
                     "padding: compute spent on nothing, which is why batching examples of similar length helps."),
    ],
    "08": [
        Question("REINFORCE subtracts a baseline b(s_t) from the return-to-go. What does that change?", choices=[
            Choice("The variance of the gradient estimate, not its expectation", True,
                   "E[grad log pi(a|s) b(s)] = b(s) sum_a grad pi(a|s) = b(s) grad 1 = 0, so the mean is kept; "
                   "the spread around it can shrink (section 1 measured it for a fixed policy)."),
            Choice("The expected gradient, towards better actions", False,
                   "The baseline term has expectation zero for any b that does not depend on the action."),
            Choice("The objective J(theta) that is maximised", False,
                   "J is the expected return and does not contain b; only the estimator of its gradient does."),
        ]),
        Question("PPO, one sample: advantage +1, ratio rho = 1.3, clip epsilon = 0.2. "
                 "What is the gradient of min(rho A, clip(rho, 0.8, 1.2) A) with respect to theta?", choices=[
                     Choice("Zero: the clipped term 1.2 is the smaller and it is flat", True,
                            "min(1.3, 1.2) = 1.2 is the clipped term, a constant: this move already gained "
                            "what the trust region allows."),
                     Choice("The policy gradient times 1.3", False,
                            "That is the gradient of the unclipped term, which the min does not select here."),
                     Choice("A pull that lowers rho back towards 1.2", False,
                            "The clip never pulls back on a gain; it only stops pushing. A pull back happens "
                            "when a move made the objective worse (A < 0 and rho > 1 + epsilon)."),
                 ]),
        Question("GAE with lambda = 0 and gamma = 0.99: r_t = 1, V(s_t) = 2, V(s_t+1) = 3, and the episode "
                 "goes on. What is the advantage estimate?", answer=1.97, tolerance=0.005,
                 why="With lambda = 0, GAE is the one-step TD error: 1 + 0.99 x 3 - 2 = 1.97."),
        Question("Why does the first minibatch of every PPO update report an approximate KL of 0?", choices=[
            Choice("It is measured before that minibatch's step, when the policy is still the one that "
                   "collected the data", True,
                   "Every ratio is then exactly 1 and (rho - 1) - log rho = 0."),
            Choice("The KL penalty is switched off in the first epoch", False,
                   "CartPole's PPO has no KL penalty at all; the approximate KL is only a diagnostic."),
            Choice("Advantages are normalised to mean 0", False,
                   "Normalisation changes the advantages, not the probability ratios the KL is computed from."),
        ]),
    ],
    "09": [
        Question("Under the Bradley-Terry model, answer a has reward 1.0 and answer b reward 0.0. "
                 "With what probability does a labeler prefer a (two decimals)?", answer=0.73, tolerance=0.005,
                 why="P(a preferred) = sigmoid(r_a - r_b) = 1 / (1 + e^-1) = 0.731."),
        Question("Add 5 to every score a reward model gives. How does its Bradley-Terry loss change?", choices=[
            Choice("Not at all", True,
                   "The loss is -log sigmoid(r_w - r_l): only differences enter, so a constant cancels. "
                   "That is why a reward's level means nothing on its own."),
            Choice("It falls: higher rewards mean more confident preferences", False,
                   "Confidence comes from the gap r_w - r_l, which a shared constant does not change."),
            Choice("It rises by 5 for every pair", False,
                   "The constant appears in both rewards of a pair and cancels in the difference."),
        ]),
        Question("The reward model agrees with gold on about 97% of test pairs but with held-out labels on "
                 "about 80%. Why can it not do much better against the labels?", choices=[
                     Choice("The labels themselves disagree with gold on about one pair in five", True,
                            "Even the gold reward would 'miss' every label a labeler got wrong, so agreement "
                            "with labels is capped near the labelers' own agreement with gold."),
                     Choice("It overfits the training labels", False,
                            "An overfitted model would do badly against gold too; it does well."),
                     Choice("The test set is too small to measure more", False,
                            "With several hundred pairs the binomial uncertainty is a few points, far less "
                            "than the 17-point gap."),
                 ]),
        Question("With 2,000 pairs, even very noisy labels (beta = 1) trained a reward model within a few "
                 "points of one trained on gold labels. What is the reason?", choices=[
                     Choice("Independent noise averages out over many pairs", True,
                            "Each noisy label is still right more often than wrong, and the errors are "
                            "independent, so the fitted preference probability keeps gold's sign."),
                     Choice("Noisy labelers are mostly right about the hard pairs", False,
                            "The simulated labelers err most on pairs whose gold rewards are close: the hard ones."),
                     Choice("The reward model ignores the labels after a while", False,
                            "It learns only from the labels; they are all it sees of the preferences."),
                 ]),
    ],
    "10": [
        Question("In the course's RLHF, which token of an answer receives the reward model's score?", choices=[
            Choice("The last one (the end-of-text token)", True,
                   "The score judges the whole answer, so it arrives when the answer is complete; every "
                   "token also gets its own -beta (log pi - log pi_ref) KL term."),
            Choice("Every token, the score divided by the answer's length", False,
                   "Spreading the score is a possible design, but not this one: GAE carries the final "
                   "score back to earlier tokens through the value head."),
            Choice("The first one, because it decides the rest", False,
                   "Nothing is known about the answer's quality after one token."),
        ]),
        Question("beta = 0.1; a sampled token has log pi = -1.0 under the policy and log pi_ref = -3.0 under "
                 "the SFT model. What is its KL reward, -beta (log pi - log pi_ref)?", answer=-0.2,
                 tolerance=0.001, why="-0.1 x (-1.0 - (-3.0)) = -0.1 x 2.0 = -0.2: the policy made this "
                                      "token more likely than the reference did, and pays for it."),
        Question("k3 = (r - 1) - log r, with r = pi_ref / pi_theta of a sampled token. Which is true?", choices=[
            Choice("k3 is never negative", True,
                   "x - 1 - log x >= 0 for every x > 0, with equality only at x = 1."),
            Choice("k3 always has a smaller variance than k1", False,
                   "Only when pi_theta is close to pi_ref. At about 2.8 nats this chapter measured a larger "
                   "spread for k3 than for k1."),
            Choice("k3 is biased, which is why InstructGPT used k1", False,
                   "Both are unbiased, since E[r] = 1 under pi_theta; k3's trouble far from the reference is "
                   "a heavy tail, so its sample mean is unreliable."),
        ]),
        Question("Before the first PPO update the policy is a copy of the SFT model. "
                 "What is every token's KL term then?", answer=0.0, tolerance=1e-9,
                 why="log pi = log pi_ref for every token, so -beta (log pi - log pi_ref) = 0; only the "
                     "final token's reward-model score is non-zero (section 2's table)."),
    ],
}


def quiz(chapter: str) -> SelfCheck:
    """The self-check widget of chapter ``chapter`` (``"04"``, ``"08"``, ...)."""
    if chapter not in QUESTIONS:
        raise KeyError(f"no self-check questions for chapter {chapter!r}; chapters with questions: "
                       f"{', '.join(sorted(QUESTIONS))}")
    return SelfCheck(QUESTIONS[chapter], title=f"Self-check, chapter {chapter}")
