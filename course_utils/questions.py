"""The chapters' self-check questions (shown with :func:`quiz`, graded by :mod:`course_utils.selfcheck`).

Each chapter ends with ``quiz("NN")``. A question about a formula gives the numbers it needs;
a question about a chapter's result asks about the idea that explains it, not a printed number
(those live in the chapter's outputs and exercises).
"""

from __future__ import annotations

from .selfcheck import Choice, Question, SelfCheck

# Chapter 00
QUESTIONS_00 = [
    Question("Of the two tuning steps the course covers, which one learns from people's comparisons of a "
             "model's answers?", choices=[
                 Choice("Instruction tuning (SFT)", False,
                        "SFT learns from (instruction, good response) pairs: someone wrote the answer, nobody "
                        "compared two of them."),
                 Choice("RLHF, through a reward model trained on the comparisons", True,
                        "People compare pairs of answers, a reward model learns to predict their choices, and the "
                        "model is optimised against it (or, in DPO's case, on the comparisons directly)."),
                 Choice("Pretraining", False,
                        "Pretraining learns to continue text; it uses no instructions and no comparisons at all."),
             ]),
    Question("Why does the course build a tiny world with a hidden 'gold' reward instead of using real data?",
             choices=[
                 Choice("So that the answers can be checked against the truth, including whether optimising a "
                        "learned reward model really made answers better", True,
                        "A real project knows only its reward model and its raters; here the gold reward is "
                        "known, so reward hacking and the alignment tax can be measured, not guessed."),
                 Choice("Because real models cannot be fine-tuned on a laptop at all", False,
                        "Small real models can be fine-tuned on a CPU, slowly; the same code takes a hub model "
                        "by name (chapters 13 and 16). The tiny world is chosen for speed and for its known truth."),
                 Choice("Because effects measured on a tiny model hold for large models too", False,
                        "They need not: a finding holds for the setup that measured it. The course says 'in this "
                        "setup' for that reason, and compares with published results at scale."),
             ]),
    Question("A chapter trains one run of a recipe live, and also loads a stored sweep that trained the same "
             "recipe with three seeds. Which of the two supports a statement such as 'recipe A beats recipe B'?",
             choices=[
                 Choice("The live run: it is the one you can watch and re-run", False,
                        "One run is one draw of the training's randomness (the order of the batches, the new "
                        "weights). It shows what the recipe does, but cannot tell a real difference from a "
                        "lucky draw."),
                 Choice("Neither: training is random, so recipes cannot be compared", False,
                        "They can, with several seeds: the spread over seeds says how large the randomness is, "
                        "and an interval over seeds says whether the difference is larger."),
                 Choice("The sweep: several seeds, reported as a mean with an interval", True,
                        "One seed is not a finding. The chapters run one seed so that they stay fast, and rest "
                        "their findings on the stored sweeps."),
             ]),
    Question("You re-run a chapter on your own laptop, and a trained number differs from the stored output in its "
             "last digits. What is the most likely reason?", choices=[
                 Choice("Another processor, PyTorch build or thread count adds floating-point numbers in another "
                        "order, and training amplifies the difference", True,
                        "The seeds fix the random numbers, not the rounding of every sum. Same machine, same "
                        "build, same thread count: same numbers; otherwise a run is one more sample of the recipe."),
                 Choice("The chapter forgot to set its seeds", False,
                        "Every chapter sets its seeds; on the machine that stored the outputs a re-run repeats "
                        "them exactly."),
                 Choice("The shipped model was downloaded again and changed", False,
                        "Nothing is downloaded: the tiny model ships with the course and loads from a folder "
                        "inside it."),
             ]),
]


# Chapter 01
QUESTIONS_01 = [
    Question("Which of these gets a new behaviour out of a model without training or changing any "
             "parameter at all?", choices=[
                 Choice("Prompting: choosing the input text, as in section 2's corpus-style prompts", True,
                        "Prompting learns nothing: the same base model did four of the five tasks once the "
                        "task was phrased the way its corpus phrases it, with every weight unchanged."),
                 Choice("Prompt tuning", False,
                        "Prompt tuning trains a few continuous vectors (virtual tokens) placed before the input. "
                        "The model's own weights stay frozen, but those vectors are learned parameters, so it "
                        "is a small form of fine-tuning, not prompting."),
                 Choice("Prefix tuning", False,
                        "Prefix tuning also learns parameters: vectors placed before every layer's keys and "
                        "values. Only the model's own weights are frozen."),
                 Choice("Instruction tuning on a small data set", False,
                        "Instruction tuning is supervised learning: it changes the model's weights to lower "
                        "the cross-entropy of the responses, however few examples it uses."),
             ]),
    Question("Asked in the chat template, the base model answered with an empty string, a lone full stop or a "
             "scrap of unrelated text. "
             "Phrased like its corpus ('7 plus 5 is'), the same model wrote 12. What does this suggest?",
             choices=[
                 Choice("Pretraining gave it much of the skill; what it lacks is the instruction format and "
                        "the habit of answering and then stopping", True,
                        "The base model has never seen the chat markers. Instruction tuning teaches it to use "
                        "its skills when asked in that format, and to end its turn with the end-of-text token. "
                        "Five prompts only illustrate this; chapter 05 measures it."),
                 Choice("The base model cannot add; instruction tuning is where it learns arithmetic", False,
                        "The corpus-style prompt shows the base model already completes '7 plus 5 is' with 12: "
                        "its pretraining corpus states sums like this one."),
                 Choice("Greedy decoding stops the base model from answering; sampling would fix it", False,
                        "Section 5 samples the base model at temperature 1 and its answers are still off-format: "
                        "none of them mentions the subject it was asked about."),
             ]),
    Question("Why does the RLHF loop start from the SFT model rather than from the base model?", choices=[
        Choice("RL can only make better sampled answers more likely, and the base model's samples are all "
               "equally off-format, so there is nothing to prefer", True,
               "The reward scores answers the model actually produces. If every sample is equally bad, no "
               "sample is better than another and the update has nothing to push towards. The SFT model's "
               "answers are on topic with a spread of quality, which is what RLHF works with."),
        Choice("Because SFT already maximises the gold reward and RL only has to polish it", False,
               "SFT learned from answers that were deliberately a mix of friendly, unfriendly and neutral "
               "sentences, so its answers vary in quality. That spread is the room RLHF has to improve."),
        Choice("Because a reward model can only be trained on answers of an instruction-tuned model", False,
               "A reward model learns from comparisons of whatever answers it is shown. The problem with the "
               "base model is on the policy side: its own samples give RL no better answer to reinforce."),
    ]),
    Question("What does step 4 of the RLHF loop, 'iterate', add to the first three steps?", choices=[
        Choice("New comparisons collected on the improved model's answers, a refreshed reward model, and "
               "another round of RL", True,
               "The reward model was trained on answers of an earlier model; comparing the new policy's "
               "answers keeps it accurate where the policy now is. Bai et al. (2022) did this roughly every "
               "week ('iterated online RLHF')."),
        Choice("More RL epochs against the same reward model", False,
               "That is just a longer step 3. The point of iterating is new preference data on the new "
               "policy's answers, and a reward model refreshed with it."),
        Choice("Nothing new: InstructGPT already ran it fully, refreshing its reward model every week", False,
               "InstructGPT did step 4 only in part (some of its comparisons were collected on answers of "
               "earlier RL models). The weekly refresh of preference data and reward model is Bai et al. (2022)."),
    ]),
    Question("Instruction tuning minimises L(theta) = sum over i of L_i, with L_i = -log p_theta(y_i | x_i), "
             "the cross-entropy of pair i's response tokens given its instruction (natural log). For pair 1 the "
             "model gives its two response tokens probabilities 0.5 and 0.5; for pair 2 it gives the single "
             "response token probability 0.25. What is L(theta), in nats (two decimals)?",
             answer=2.77, tolerance=0.005,
             why="-log p(y | x) is the sum of -log over the response tokens. Pair 1: -log 0.5 - log 0.5 = "
                 "2 log 2 = 1.386. Pair 2: -log 0.25 = log 4 = 1.386. Total: 4 log 2 = 2.77 nats."),
]


# Chapter 02
QUESTIONS_02 = [
    Question("Sampling at temperature T draws the next token from softmax(logits / T). Which statement is true?",
             choices=[
                 Choice("T changes how peaked the distribution is, never the order of the tokens by probability", True,
                        "Dividing every logit by the same positive T keeps their order; the ratio of two tokens' "
                        "probabilities becomes exp((l_i - l_j) / T), which grows as T falls and shrinks towards 1 "
                        "as T grows."),
                 Choice("A higher T makes the samples less varied", False,
                        "The other way round: a higher T flattens the distribution towards uniform, so samples "
                        "vary more. In section 5, 30 samples were all identical at T = 0 and all distinct at T = 1."),
                 Choice("T = 2 makes the most likely token twice as likely", False,
                        "T = 2 halves every logit gap, which flattens the distribution: the most likely token "
                        "loses probability to the others."),
                 Choice("T = 0 cannot be used, because it would divide by zero", False,
                        "T = 0 is taken as the limit T -> 0, where all probability goes to the most likely "
                        "token: the course's generate decodes greedily when the temperature is 0."),
             ]),
    Question("A model gives three tokens the logits 2.0, 1.0 and 0.0. Sampling at temperature T = 2, with what "
             "probability is the first token drawn (two decimals)?", answer=0.51, tolerance=0.005,
             why="Divide the logits by 2: 1.0, 0.5, 0.0. softmax: e^1 / (e^1 + e^0.5 + e^0) = 2.718 / (2.718 + "
                 "1.649 + 1) = 0.51. At T = 1 it would be e^2 / (e^2 + e^1 + 1) = 0.67: the higher temperature "
                 "moved probability from the top token to the others."),
    Question("The course's byte-level BPE tokenizer splits 'What is 2 plus 3?' into W + hat + ..., but the "
             "same word after a space is the single token for ' What'. Why?", choices=[
                 Choice("In the corpus 'What' always follows a space, so BPE learned the merge for ' What' "
                        "and never needed 'What' alone", True,
                        "BPE merges what is frequent, nothing more. The chat template starts every message with "
                        "a space for exactly this reason: so the first word is one token, as in the corpus."),
                 Choice("BPE always splits a capital letter off the rest of a word", False,
                        "'Tom saw a brown dog.' starts with the single token Tom, and capitalised words such as "
                        "RED and BALL are single tokens after a space: what decides is frequency in the corpus."),
                 Choice("The tokenizer has no token for 'What' and so maps it to an unknown token, spelled W + hat", False,
                        "Byte-level BPE has no unknown token: it starts from the 256 byte values, so any text "
                        "encodes, an unfamiliar word just as several smaller pieces (xylophone becomes eight)."),
             ]),
    Question("Score an answer to 'Write a sentence about a cat.' with the gold reward: subject +1 if 'cat' "
             "appears, else -1; tone +0.5 per distinct friendly word, at most +1, and -0.5 per unfriendly word; "
             "-0.5 for each repeated word (little words such as 'the' and 'and' excepted); length -0.5 under 4 "
             "words, -0.1 per word beyond 12; -0.5 unless it is one sentence ending in a full stop. The answer: "
             "'The happy cat and the kind nice cat sleep.' (happy, kind and nice are friendly words; there are "
             "no unfriendly ones).", answer=1.5, tolerance=0.05,
             why="Subject +1. Tone: three distinct friendly words would be +1.5, capped at +1. Repetition: 'cat' "
                 "appears twice, -0.5 ('the' is excepted). Length: 9 words, 0. Ending: one sentence with a full "
                 "stop, 0. Total 1 + 1 - 0.5 = 1.5."),
    Question("The add test uses pairs of operands that no instruction example uses. What does a high exact match "
             "on it show?", choices=[
                 Choice("That the tuned model recalls, in the new question-and-answer format, sums it read during "
                        "pretraining", True,
                        "The pretraining corpus states the sum of every pair of numbers up to 20, so the test "
                        "pairs are new to instruction tuning but not to the model."),
                 Choice("That the model can add numbers it never saw added", False,
                        "It has seen them added: documents such as '6 and 16 make 22.' cover every pair up to 20 "
                        "in the pretraining corpus."),
                 Choice("That the model generalises to words it never saw in training", False,
                        "That is what test_heldout_words probes, with words absent from every instruction-training "
                        "example (they still occur in the pretraining corpus)."),
             ]),
]


# Chapter 03
QUESTIONS_03 = [
    Question("In a tokenised training example, the response tokens and the end-of-text token carry labels; "
             "the prompt tokens get -100. Why is the end-of-text token labelled?", choices=[
                 Choice("Learning to emit it is how the model learns to stop", True,
                        "Generation ends at the end-of-text token. A model never trained to write it after an "
                        "answer would keep going."),
                 Choice("It marks where the padding starts, so the loss can skip the pads", False,
                        "Pads are skipped because their labels are -100, not because of the end-of-text token; "
                        "the end-of-text token is a target the model must learn to predict."),
                 Choice("So that the model also learns what follows a finished exchange", False,
                        "The newline after the end-of-text token has label -100. The masked model was never "
                        "trained on what follows a finished exchange; only the model trained on every token was."),
             ]),
    Question("Gradient accumulation over two micro-batches. Micro-batch 1 has 4 response tokens whose losses sum "
             "to 12; micro-batch 2 has 12 response tokens whose losses sum to 12. What is the correct per-token "
             "mean loss of the whole batch?", answer=1.5, tolerance=0.005,
             why="Sum the token losses of all micro-batches and divide once by the total number of response "
                 "tokens: (12 + 12) / (4 + 12) = 24 / 16 = 1.5. The naive way averages the micro-batch means, "
                 "(12/4 + 12/12) / 2 = (3 + 1) / 2 = 2.0, which gives the 4-token micro-batch as much say as "
                 "the 12-token one."),
    Question("Left-padded, with the attention mask but without position_ids, every example's loss matched its "
             "loss alone, although the model numbered the positions along the whole row, pads included. Why?",
             choices=[
                 Choice("Rotary position embeddings make attention depend only on the distance between tokens, "
                        "and shifting all real tokens by the same amount changes no distance", True,
                        "That is why this Llama-style model was unaffected. A model with absolute position "
                        "embeddings, such as GPT-2, would give different losses unless position_ids counted from "
                        "the first real token."),
                 Choice("The attention mask also resets the positions so they count from the first real token", False,
                        "The mask only stops real tokens from attending to the pads. Without position_ids the "
                        "model numbers positions 0, 1, 2, ... along the whole row."),
                 Choice("The pads have label -100, so they cannot change the loss", False,
                        "The labels keep the pads out of the loss, but not out of attention: without the mask, "
                        "left padding did change the losses of the padded examples."),
             ]),
    Question("The sweep added a third arm: every token labelled, but each prompt token weighted 0.1. Its "
             "validation loss on the prompt tokens came out close to the full-weight arm's, and it matched the "
             "masked arm on exact match and response loss. What did that let the chapter conclude?", choices=[
                 Choice("In this setup the gap came from gradient budget: at full weight the prompt tokens carried "
                        "most of each step's loss weight, leaving little for the responses", True,
                        "A capacity explanation predicts that an arm which learns the prompts pays for it on the "
                        "responses. The weight-0.1 arm measurably learned the prompts and paid nothing measurable "
                        "(3 seeds); only a small capacity cost is left unexcluded."),
                 Choice("The model lacks the capacity to learn both prompts and responses", False,
                        "The third arm learned both: its prompt loss was close to the full-weight arm's and its "
                        "response loss to the masked arm's. That is what the capacity explanation cannot "
                        "account for."),
                 Choice("Loss on the prompt always hurts instruction tuning", False,
                        "The chapter says this is a finding about this setup, not a rule: published work found "
                        "that some loss on the prompt, or a small prompt-loss weight, can help."),
             ]),
    Question("An arm is trained with 3 seeds and scores exact match 0.70, 0.74 and 0.72 (mean 0.72, standard "
             "deviation over seeds s = 0.02). With t = 4.30 for 2 degrees of freedom, what is the half-width "
             "t x s / sqrt(n) of its 95% t interval (three decimals)?", answer=0.050, tolerance=0.0005,
             why="4.30 x 0.02 / sqrt(3) = 0.086 / 1.732 = 0.050, so the interval is 0.72 +- 0.05: few seeds "
                 "give a wide interval, because t is large and sqrt(n) small."),
]


# Chapter 04
QUESTIONS_04 = [
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
    Question("The 200-step SFT run of this chapter has the code, seed and settings of seed 0 of chapter 03's "
             "sweep, which ran in another process. When can you expect it to print exactly that row's numbers?",
             choices=[
                 Choice("Only on the same kind of machine, with the same PyTorch build and the same number of "
                        "threads; elsewhere it is one more run of the same recipe", True,
                        "set_seed fixes the new weights and the batch order, so the same arithmetic repeats "
                        "exactly where the arithmetic is the same. Another processor, BLAS library or thread "
                        "count can change the last bits of a floating-point sum, and 200 steps of training "
                        "amplify them."),
                 Choice("Always: set_seed makes a run the same on every computer", False,
                        "A seed fixes the random numbers, not the order in which a processor adds up "
                        "floating-point numbers; that order can differ between machines and thread counts, "
                        "and so can the last bits of every sum."),
                 Choice("Always, because the sweep stored the model this notebook trained", False,
                        "The sweep ran on its own (python -m course_utils.experiments) and stores only "
                        "numbers, never models: the notebook trains its own."),
             ]),
    Question("A batch of 32 examples is right-padded to its longest example, 40 tokens. The examples "
             "average 20 tokens. What fraction of the batch's positions is padding?",
             answer=0.5, tolerance=0.01,
             why="32 x 40 = 1,280 positions hold 32 x 20 = 640 real tokens, so 640 / 1,280 = 0.5 are "
                 "padding: compute spent on nothing, which is why batching examples of similar length helps."),
]


# Chapter 05
QUESTIONS_05 = [
    Question("A LoRA layer computes h = W x + (alpha / r) B A x. Why does training start exactly at the "
             "base model?", choices=[
                 Choice("B starts at zero, so BA = 0 and the effective weight W + (alpha/r) BA equals W", True,
                        "Only A is random at the start; with B = 0 the product BA is exactly zero, so the "
                        "adapted model computes what the base model computes until the first update moves B."),
                 Choice("W is frozen, so the layer's output cannot change until the adapter is merged", False,
                        "The layer adds (alpha/r) B A x to W x in every forward pass during training; merging "
                        "(merge_and_unload) is only a way to deploy it without the extra matrices. The "
                        "effective weight changes as soon as B does."),
                 Choice("A and B start as small random matrices, so their product is negligible", False,
                        "A small random product would still shift the model a little. The start is exact "
                        "because one of the two factors, B, is all zeros."),
             ]),
    Question("The chapter measured |(alpha/r) BA| / |W| for all 28 adapted matrices after training. What does "
             "LoRA's rank r restrict?", choices=[
                 Choice("The number of directions in which a weight matrix can change: the update has rank at "
                        "most r", True,
                        "BA is a product through an r-dimensional bottleneck, so its rank is at most r (the "
                        "chapter printed rank 8). How far the weights move along those directions is not "
                        "limited: the updates were 13% to 38% of W's norm."),
                 Choice("How large the change to each weight matrix can be", False,
                        "A low-rank matrix can have a large norm. The measured updates were not small next to "
                        "W (median about a fifth of its norm); low rank is not the same as small."),
                 Choice("Which weight matrices may change at all", False,
                        "The choice of matrices is target_modules, not r. The chapter adapted all seven "
                        "projections of every layer, each with a rank-8 update."),
             ]),
    Question("All four instruction-frame prompts (Q/A and Input/Output, 0-shot and 3-shot) got no test item "
             "right, while the same frozen model answered most items when each task was rephrased as a "
             "corpus sentence. What explains most of the difference?", choices=[
                 Choice("The corpus-style prompts look like the model's training text; 'Q:', 'Input:' and "
                        "line breaks never occurred in its corpus", True,
                        "With no weights changed, what works is what resembles the training data. The "
                        "lenient answer reader helped the corpus-style prompts too, but the instruction-frame "
                        "continuations were not answers at all (' The bell is dirty.'), which no reader "
                        "could rescue."),
                 Choice("The three solved examples confused the model", False,
                        "The 0-shot instruction prompts scored 0 as well, so the examples cannot be what "
                        "failed; the frame itself was foreign."),
                 Choice("The base model learns in context, but needs more than three examples", False,
                        "The chapter found no sign of in-context learning: in a neutral frame where only the "
                        "examples said which task was meant, three examples left the model at 0 of 80. "
                        "In-context learning appeared with scale (GPT-3), not in this 1.2M-parameter model."),
             ]),
    Question("LoRA did not make a training step faster on this 1.2M-parameter model. Where does LoRA pay "
             "off, and why?", choices=[
                 Choice("Memory and storage: gradients and optimizer state are needed only for the small "
                        "adapter, and the adapter file is small", True,
                        "Full fine-tuning with Adam keeps about 16 bytes per weight; LoRA keeps that state only "
                        "for A and B. The frozen weights must still sit in memory, which QLoRA shrinks by "
                        "storing them in 4 bits."),
                 Choice("Compute: it skips the backward pass through the frozen layers", False,
                        "The gradient still has to pass back through every frozen matrix to its input, to "
                        "reach the adapters of earlier layers. Only the gradient of each frozen weight itself "
                        "is skipped, about a third of the multiplications, and at this size the adapters' "
                        "overhead ate that saving."),
                 Choice("Memory: LoRA makes the frozen weights themselves smaller", False,
                        "LoRA leaves W unchanged and in its original precision. Storing the frozen weights in "
                        "4 bits is QLoRA's addition, a separate step."),
             ]),
    Question("LoRA adds r (d_in + d_out) trainable parameters to a d_out x d_in weight matrix. Llama 2 7B's MLP "
             "down projection maps 11,008 inputs to 4,096 outputs. How many trainable parameters does a rank-16 "
             "LoRA adapter add to this one matrix?", answer=241664, tolerance=0.5,
             why="A is 16 x 11,008 and B is 4,096 x 16: 16 x (11,008 + 4,096) = 16 x 15,104 = 241,664, about "
                 "0.5% of the matrix's 4,096 x 11,008 = 45,088,768 weights."),
    Question("lora_alpha = 16 and r = 8. One entry of a frozen weight W is 0.10, and the same entry of the "
             "learned product BA is 0.03. What is that entry of the merged weight W + (alpha/r) BA?",
             answer=0.16, tolerance=0.0005,
             why="alpha/r = 16/8 = 2, so the merged entry is 0.10 + 2 x 0.03 = 0.16. The chapter checked the "
                 "same formula against PEFT's merge_and_unload."),
]


# Chapter 06
QUESTIONS_06 = [
    Question("Where does the Bellman expectation equation V_pi(s) = sum_a pi(a|s) [R(s,a) + gamma sum_s' "
             "P(s'|s,a) V_pi(s')] come from?", choices=[
                 Choice("From the return's recursion G_t = r_t+1 + gamma G_t+1, averaged given s_t = s, with "
                        "the Markov property", True,
                        "Taking the expectation averages the first step over the action (pi) and the next "
                        "state (P); by the Markov property, what follows s_t+1 is worth V_pi(s_t+1) on "
                        "average. The equation is an exact identity for any policy."),
                 Choice("It holds only for the optimal policy", False,
                        "It holds for every policy pi and defines V_pi. The optimality equation, for V*, "
                        "replaces the average over pi's actions by a max."),
                 Choice("It is an approximation that becomes exact after many sweeps of iterative evaluation", False,
                        "The equation is exact; iterative evaluation is one way to solve it, and the linear "
                        "solve V = (I - gamma P_pi)^-1 R_pi is another. The chapter found the two within "
                        "4.1e-10 of each other."),
             ]),
    Question("Which statement about V and Q is true?", choices=[
        Choice("V_pi(s) = sum_a pi(a|s) Q_pi(s,a), and V*(s) = max_a Q*(s,a)", True,
               "Q_pi(s,a) is the expected return after taking a in s and then following pi, so averaging "
               "over pi's choice of a gives V_pi. Acting optimally means taking the best action now and "
               "acting optimally afterwards, hence the max for V*."),
        Choice("V_pi(s) = max_a Q_pi(s,a) for every policy", False,
               "That holds only for a policy that always takes the best action under its own Q. For the "
               "uniform random policy, the max overstates its value: it averages good and bad actions."),
        Choice("Q*(s,a) = max_pi Q_pi(s,a) needs P to be deterministic", False,
               "The definition and the equation Q*(s,a) = R(s,a) + gamma sum_s' P(s'|s,a) V*(s') hold "
               "on slippery FrozenLake, where P is random; the expectation over s' takes care of it."),
    ]),
    Question("On FrozenLake the optimal policy's V*(start) is clearly lower than its simulated success rate. "
             "Why?", choices=[
                 Choice("V* discounts: a success after T steps is worth gamma^(T-1), and the careful policy "
                        "takes many steps", True,
                        "The success rate counts every success as 1; the value counts it as 0.99^(T-1). A "
                        "policy that presses against walls to avoid holes reaches the goal late, so its "
                        "discounted value is well below its success rate."),
                 Choice("Value iteration stopped before it converged", False,
                        "V* matched policy iteration and the linear solve of its own greedy policy to 2.8e-09; "
                        "it is converged."),
                 Choice("The simulation counts episodes cut at 100 steps as successes", False,
                        "A cut episode has reward 0 and counts as a failure; the 100-step limit can only "
                        "lower the success rate."),
             ]),
    Question("The optimal FrozenLake policy goes left from the start square, into the wall. Why is that "
             "optimal?", choices=[
                 Choice("From the start square, pushing against the wall, you either stay put or slide along it, never into a hole, "
                        "and gamma = 0.99 makes waiting cheap", True,
                        "On slippery ice you move in the intended direction or one of the two perpendicular "
                        "ones; aiming at a wall turns the risky outcomes into harmless ones. The policy trades "
                        "speed for safety."),
                 Choice("With gamma close to 1 the agent prefers rewards that come later", False,
                        "With gamma < 1 a later reward is always worth less. Waiting is accepted because it "
                        "costs little (0.99 per step), not because it is preferred."),
                 Choice("Ties between equal action values are broken by taking the first action, left", False,
                        "The action is the argmax of Q*, chosen because it has the highest value; value "
                        "iteration and policy iteration found the same actions in every non-terminal square."),
             ]),
    Question("gamma = 0.99, FrozenLake's convention (a move that ends the episode keeps its reward in R but has "
             "no entry in P). From square s, action right reaches the goal with probability 1/3 (reward 1, "
             "the episode ends) and lands on squares s1 and s2 with probability 1/3 each (reward 0). Under "
             "policy pi, V_pi(s1) = 0.6 and V_pi(s2) = 0.3. What is Q_pi(s, right) (three decimals)?",
             answer=0.630, tolerance=0.0005,
             why="Q_pi(s, a) = R(s, a) + gamma sum_s' P(s'|s, a) V_pi(s') = 1/3 + 0.99 x (1/3 x 0.6 + 1/3 x 0.3) "
                 "= 0.3333 + 0.297 = 0.630. The goal contributes its reward to R but nothing after it, which "
                 "is why P(s, right) sums to 2/3 here."),
]


# Chapter 07
QUESTIONS_07 = [
    Question("One Q-learning update: alpha = 0.1, gamma = 0.99, Q(s, a) = 0.5. The agent observes reward 0 and "
             "a next state s' that does not end the episode, with max_a' Q(s', a') = 0.8. What is Q(s, a) after "
             "the update (four decimals)?", answer=0.5292, tolerance=0.00005,
             why="Target = r + gamma max_a' Q(s', a') = 0 + 0.99 x 0.8 = 0.792. Q(s, a) <- 0.5 + 0.1 x "
                 "(0.792 - 0.5) = 0.5 + 0.0292 = 0.5292. Had s' ended the episode, the target would be r alone."),
    Question("Why is Q-learning called off-policy?", choices=[
        Choice("Its target uses max_a' Q(s', a'), the value of acting greedily next, whatever action the "
               "epsilon-greedy agent actually takes", True,
               "It learns the value of the greedy policy while behaving epsilon-greedily. SARSA bootstraps from "
               "Q(s', a') for the action it will take next, so it learns the value of the policy it follows."),
        Choice("Because it explores with random actions", False,
               "SARSA explores epsilon-greedily too and is on-policy. What makes a method off-policy is whose "
               "value the target estimates, not whether the agent explores."),
        Choice("Because it learns from a replay buffer of old transitions", False,
               "The tabular Q-learning of the chapter has no replay buffer and updates from each transition as "
               "it happens; it is off-policy because of its target. DQN's replay buffer is possible because "
               "Q-learning is off-policy, not the reason it is."),
    ]),
    Question("On FrozenLake with alpha = 0.1, agents with epsilon = 0 did reach the goal while learning, yet "
             "their greedy policies did far worse than with epsilon = 0.2. Why?", choices=[
                 Choice("Once an action has paid off, its Q-value is the only maximum in its row, so the agent "
                        "takes it every time and never tries the alternatives again", True,
                        "An all-zero table wanders, because ties are broken at random. After a success, one "
                        "action's value is above 0, and with no random actions the others are never tried, "
                        "so their values never get the updates that could show they are better."),
                 Choice("With epsilon = 0 the agent never reaches the goal, so every Q-value stays 0", False,
                        "The epsilon = 0 agents reached the goal 127 times in 3,000 episodes on average. The "
                        "trouble is what happens after the first successes: the agent stops exploring."),
                 Choice("The slippery ice already explores, so epsilon makes no difference in principle", False,
                        "Slipping randomises where the agent lands, not which action it chooses in a square. "
                        "An action that is never chosen never has its Q-value updated."),
             ]),
    Question("On CliffWalking with epsilon = 0.1, SARSA earned more per episode while learning than Q-learning, "
             "but its greedy path was longer. What explains both?", choices=[
                 Choice("SARSA's target counts the random steps the epsilon-greedy agent will take, so it values "
                        "squares next to the cliff low and keeps away from the edge", True,
                        "SARSA learns the value of the policy it follows, stumbles included; next to the cliff a "
                        "random step costs -100. Q-learning learns the optimal edge path (-13) and pays for its "
                        "stumbles there while it keeps exploring."),
                 Choice("Q-learning had not yet found the optimal path", False,
                        "Q-learning's greedy path returned -13 on all 5 seeds, the optimum of value iteration. "
                        "Its lower return while learning comes from exploring next to the edge."),
                 Choice("SARSA used a larger learning rate", False,
                        "Both ran with the same alpha, epsilon and gamma; they differ only in the next-state "
                        "value used in the target."),
             ]),
    Question("Every action's true value is 0, and each estimate has independent noise. What does "
             "max_a Q(s, a) do, and what does Double DQN change?", choices=[
                 Choice("It is biased upward, more so with more actions; Double DQN lets the online network "
                        "choose the action and the target network evaluate it", True,
                        "The largest of several noisy estimates lies above the true value on average. With "
                        "separate networks choosing and evaluating, an action whose value one network "
                        "overestimates is usually not overestimated by the other."),
                 Choice("It is unbiased, because the noise has mean zero", False,
                        "Each single estimate is unbiased, but the max picks whichever happens to be high, so "
                        "the max is not: the chapter measured the bias of one max at 2 and at 939 actions."),
                 Choice("It is biased upward, and a target network alone removes the bias", False,
                        "A target network keeps the regression target from moving with every update; its max "
                        "over noisy estimates is still biased upward. Removing much of the bias needs the "
                        "decoupling of Double DQN."),
             ]),
]


# Chapter 08
QUESTIONS_08 = [
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
]


# Chapter 09
QUESTIONS_09 = [
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
]


# Chapter 10
QUESTIONS_10 = [
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
               "It is guaranteed only when pi_theta is close to pi_ref. Far from the reference a rare token "
               "with a large ratio pi_ref / pi_theta gives k3 a heavy tail; exercise 4's toy policy shows its "
               "spread overtaking k1's as the policy moves away."),
        Choice("k3 is biased, which is why InstructGPT used k1", False,
               "Both are unbiased, since E[r] = 1 under pi_theta; k3's trouble far from the reference is "
               "a heavy tail, so its sample mean is unreliable."),
    ]),
    Question("Before the first PPO update the policy is a copy of the SFT model. "
             "What is every token's KL term then?", answer=0.0, tolerance=1e-9,
             why="log pi = log pi_ref for every token, so -beta (log pi - log pi_ref) = 0; only the "
                 "final token's reward-model score is non-zero (section 2's table)."),
]


# Chapter 11
QUESTIONS_11 = [
    Question("DPO substitutes r(x, y) = beta log(pi*(y|x) / pi_ref(y|x)) + beta log Z(x) into the Bradley-Terry "
             "probability sigmoid(r(x, y_w) - r(x, y_l)). Why does the partition function Z(x) not appear in the "
             "DPO loss?", choices=[
                 Choice("beta log Z(x) depends only on the prompt, so it is the same for both answers of a pair "
                        "and cancels in the reward difference", True,
                        "Bradley-Terry uses only r_w - r_l, and both rewards carry the same beta log Z(x). Section 1 "
                        "printed beta log(pi*/pi_ref) - r as one and the same constant for all five answers."),
                 Choice("Z(x) equals 1 because pi_ref is a normalised distribution", False,
                        "Z(x) = sum_y pi_ref(y|x) exp(r(x, y)/beta) weights exp(r/beta) by pi_ref; pi_ref summing to 1 "
                        "makes Z = 1 only for special rewards (r = 0 everywhere, or r = beta log(pi/pi_ref) for some "
                        "policy pi). In section 1's toy problem beta log Z was about 0.96, not 0. It cancels; it is "
                        "not 1 in general."),
                 Choice("DPO estimates Z(x) with a value head and subtracts it", False,
                        "DPO has no value head and no reward model: Z(x) drops out exactly, which is why the loss "
                        "needs only the policy's and the reference's log-probabilities."),
                 Choice("It is small enough to neglect when beta is small", False,
                        "Nothing is neglected: the cancellation is exact for every beta, whatever the size of Z."),
             ]),
    Question("DPO with beta = 0.1. For one pair, the policy's log-ratio log(pi_theta / pi_ref) is -2.0 for the chosen "
             "answer and +1.0 for the rejected one. What is this pair's DPO loss, "
             "-log sigmoid(beta (log-ratio_w - log-ratio_l)) (two decimals)?", answer=0.85, tolerance=0.005,
             why="The implicit rewards are 0.1 x (-2.0) = -0.2 and 0.1 x 1.0 = 0.1, so the margin is -0.3 and the "
                 "loss is -log sigmoid(-0.3) = log(1 + e^0.3) = 0.854. The pair is ranked the wrong way, so its "
                 "gradient weight sigmoid(0.3) = 0.57 is more than a half."),
    Question("In section 2's run (beta = 0.1), the mean log-probability of the chosen answers of the probe pairs fell "
             "by 2.36 nats and that of the rejected answers by 6.28. What does this show about DPO?", choices=[
                 Choice("The loss pushes only the difference of the two log-ratios; nothing holds either "
                        "log-probability at its level", True,
                        "The loss's gradient is -beta sigmoid(r_l - r_w) (grad log pi(y_w) - grad log pi(y_l)), so "
                        "a step down the loss raises only the difference of the two log-probabilities: the margin "
                        "grew by about 3.9 nats of log-ratio (0.39 in implicit reward at beta = 0.1) as asked, while both "
                        "answers became less likely than under SFT."),
                 Choice("The run diverged: a working DPO run always raises the chosen answers' probability", False,
                        "Both log-probabilities often fall in practice (Pal et al., 2024; Rafailov et al., 2024). "
                        "The loss asks for a larger margin, not a more likely chosen answer."),
                 Choice("beta = 0.1 is too large and held the chosen answers back", False,
                        "A small beta lets the policy move far; over 3 seeds beta = 0.1 ended furthest from the "
                        "SFT model of the three betas."),
             ]),
    Question("Over 3 seeds, DPO with beta = 0.1 ended about 4 nats from the SFT model and gained no gold reward on "
             "average, while PPO with KL coefficient 0.1 gained clearly at about 3 nats. Which explanation does the "
             "chapter give?", choices=[
                 Choice("DPO trains offline on a fixed set of SFT answers, so a small beta lets the policy drift in "
                        "directions the labels say nothing about; PPO keeps sampling fresh answers and scoring them",
                        True,
                        "Nothing corrects the DPO policy where it has left the labelled answers behind; online or "
                        "iterative DPO brings back fresh samples for that reason. (The comparison has a confound "
                        "too: PPO's reward model was trained on twice as many labelled pairs as DPO saw.)"),
                 Choice("DPO optimises a different objective from PPO, one that ignores the KL to the reference", False,
                        "DPO is derived from the same KL-regularised objective; beta plays the role of the KL "
                        "coefficient. The difference is how the data are gathered, not the objective."),
                 Choice("beta = 0.1 kept the DPO policy too close to the SFT model to gain anything", False,
                        "It moved further than any other arm (4.16 nats on average); the trouble is where it "
                        "moved, not that it could not move."),
             ]),
    Question("GRPO, one group of G = 4 answers with rewards 1, 0, 0, 0. The advantage is "
             "A_i = (r_i - mean) / (std + 0.0001), where std is the sample standard deviation (dividing by G - 1, "
             "as the course and TRL do). What is the advantage of the right answer (two decimals)?",
             answer=1.50, tolerance=0.005,
             why="mean = 0.25; std = sqrt((0.75^2 + 3 x 0.25^2) / 3) = sqrt(0.25) = 0.5; "
                 "A = 0.75 / 0.5001 = 1.4997, about 1.50. Each wrong answer gets -0.25 / 0.5001 = -0.50, so the "
                 "advantages of the group add up to 0."),
    Question("In a GRPO step, all 8 answers to one question are right. What does that group contribute to the update?",
             choices=[
                 Choice("No gradient from the clipped term, because every advantage is 0; its tokens still enter "
                        "the KL penalty", True,
                        "r_i - mean = 0 for every answer, so A_i = 0. In the course's recipe (beta = 0.04) the k3 "
                        "KL term still pulls those answers toward the SFT model."),
                 Choice("The strongest push, since every answer earned the full reward", False,
                        "GRPO compares each answer with its own group; with nothing to tell apart, there is no "
                        "signal. The same holds for a group that is all wrong."),
                 Choice("A NaN loss, because the standard deviation of the group is 0", False,
                        "The 0.0001 in the denominator prevents a division by zero, and the numerator is 0 anyway."),
             ]),
]


# Chapter 12
QUESTIONS_12 = [
    Question("The KL bound usually quoted for best-of-n is KL(pi_BoN || pi_SFT) <= log n - (n - 1)/n (natural "
             "log). What is the bound for n = 10, in nats (two decimals)?", answer=1.40, tolerance=0.005,
             why="log 10 - 9/10 = 2.303 - 0.9 = 1.403. The bound grows only like log n: best-of-n needs "
                 "exponentially many samples to move further from the SFT model."),
    Question("An SFT model gives the same answer to a prompt 90% of the time, and the reward model scores that answer "
             "above every other. What is true of the KL of best-of-16 from the SFT model on that prompt?", choices=[
                 Choice("It is far below log 16 - 15/16 = 1.84: best-of-16 returns the common answer almost every "
                        "time, so it stays close to the SFT model", True,
                        "The formula is exact only when the n samples are always distinct; it is an upper bound "
                        "(Beirami et al., 2024), loose when a few answers carry much of the probability. Here the "
                        "common answer goes from probability 0.9 to nearly 1, a KL of about log(1/0.9) = 0.11 nats."),
                 Choice("It is exactly 1.84: the formula holds for any model", False,
                        "Its derivation assumes that the samples never repeat; with repeats best-of-n moves the "
                        "distribution less than the formula says."),
                 Choice("It is above 1.84, because the common answer is over-represented", False,
                        "log n - (n - 1)/n is an upper bound on the true KL, whatever the SFT distribution; repeats "
                        "make the true KL smaller, not larger."),
             ]),
    Question("Without the KL penalty, section 1's PPO run kept its proxy reward near the top (about 1.4) while the gold "
             "reward fell below zero and the KL grew past 20 nats. Which description fits what the chapter found?",
             choices=[
                 Choice("Drift under a saturated proxy: the reward model had nothing more to give, nothing held the "
                        "policy near the SFT model, and it wandered into answers the reward model scores as high as "
                        "good ones but gold does not", True,
                        "Most answers became praise words joined by 'and', without the subject: the reward model's "
                        "blind spots from chapter 09, found and exploited by the optimiser (Goodhart's law)."),
                 Choice("Gao et al.'s signature exactly: the proxy kept rising while the gold fell", False,
                        "Here the proxy saturated near 1.5; at the last step the unanchored runs scored no higher "
                        "on it than the anchored ones. The gold fell while the proxy stood still."),
                 Choice("PPO failed to optimise the reward model without the penalty", False,
                        "It raised the proxy about as high as the anchored run did; what failed is the reward model as a "
                        "measure of gold once the policy left the answers it was trained on."),
             ]),
    Question("Over the best-of-n sweep, the gold reward of the answer the reward model picks levels off above n = 16, "
             "while the best answer by gold among the same n samples keeps improving. What limits best-of-n here?",
             choices=[
                 Choice("The reward model's errors: the samples contain better answers, but the proxy does not "
                        "pick them", True,
                        "Choosing by gold itself, best-of-64 reaches more gold than the reward model's choice, and "
                        "the gap grows with n: the more candidates, the more the pick favours answers the reward "
                        "model overrates."),
                 Choice("The SFT model's samples: beyond 16 there are no better answers to find", False,
                        "The best-by-gold column keeps rising up to n = 64, so better answers are there."),
                 Choice("The KL budget: best-of-n cannot move more than a fixed KL from the SFT model", False,
                        "Its KL keeps growing with n (like log n); the gold levels off while the KL still grows."),
             ]),
    Question("Win-rate against the SFT model counts ties as half a win. On 200 prompts the tuned model's answer has "
             "higher gold on 150, equal gold on 20 and lower gold on 30. What is its win-rate (as a fraction)?",
             answer=0.80, tolerance=0.001,
             why="(150 + 0.5 x 20) / 200 = 160 / 200 = 0.80."),
    Question("The anchored PPO run (KL coefficient 0.1) answered every sentiment question with the right label "
             "followed by more words, so its sentiment exact match fell to 0. Why did the KL penalty not prevent "
             "this?", choices=[
                 Choice("PPO only sampled open-ended prompts, and the KL penalty protects the SFT behaviour only "
                        "where the policy is sampled", True,
                        "The gold reward (and so the reward model) penalises answers under four words; PPO learned "
                        "'do not stop early', and nothing in its prompts told it that one word is right for a "
                        "classification question."),
                 Choice("The KL coefficient 0.1 is too small to matter", False,
                        "The same coefficient held the policy near the SFT model on the open-ended prompts it was "
                        "applied to: the run ended a few nats away with gold near its peak, after a transient "
                        "excursion it came back from (the penalty does not prevent a single bad update). The "
                        "sentiment prompts were never part of the KL term at all."),
                 Choice("This is certain to happen in every RLHF run with these settings", False,
                        "In the sweep the multi-word sentiment answers appeared in one of 3 seeds; sentiment exact "
                        "match fell in two of them, the other by giving one-word answers with the wrong label. "
                        "Side effects, and their causes, must be measured over several seeds."),
             ]),
]


# Chapter 13
QUESTIONS_13 = [
    Question("Full fine-tuning in fp32 with AdamW takes 16 bytes per parameter (4 for the weight, 4 for its gradient, "
             "8 for Adam's two moments), before activations. How many GiB (2^30 bytes) is that for a model with "
             "2 billion parameters (one decimal)?", answer=29.8, tolerance=0.05,
             why="16 x 2e9 = 3.2e10 bytes, and 3.2e10 / 2^30 = 29.8 GiB: four times the weights alone (7.5 GiB). "
                 "LoRA shrinks the gradients and Adam states to those of its few trained parameters."),
    Question("Section 4 ran TRL's GRPOTrainer with its defaults, beta = 0.0 and num_iterations = 1. What follows?",
             choices=[
                 Choice("No KL term and no reference model; each batch gets one gradient step taken where the "
                        "probability ratio is 1, so the clip never acts", True,
                        "With one update per group the new and old policies are equal when the gradient is "
                        "taken. The course's train_grpo uses beta = 0.04 (k3) and 4 updates per group, where the "
                        "clip matters from the second update on."),
                 Choice("It is the course's train_grpo under another name", False,
                        "Only the advantages are checked to be equal (tests/test_trl_crosscheck.py); the course "
                        "keeps the paper's KL penalty and 4 updates. Set beta and num_iterations to get its behaviour."),
                 Choice("Its advantages differ from the course's because TRL does not divide by the group's std",
                        False,
                        "scale_rewards = 'group', TRL's default, divides by the group's std, and the crosscheck "
                        "test finds the same advantages as the course's group_advantages."),
             ]),
    Question("Which models must be held in memory while training with GRPO in TRL's default setting (beta = 0.0) "
             "and a reward computed by a program, such as an exact-match check of a sum?", choices=[
                 Choice("The policy only", True,
                        "GRPO needs no critic (the group mean is the baseline), beta = 0.0 loads no reference "
                        "model, and a rule-based reward needs no reward model. Dropping models is why GRPO and DPO "
                        "are popular."),
                 Choice("Policy, reference, reward model and critic, as in PPO-based RLHF", False,
                        "That is PPO-based RLHF at scale. GRPO drops the critic, and here also the reference and the "
                        "reward model."),
                 Choice("The policy and a value model initialised from the reward model", False,
                        "A separate value model is what PPO uses at scale (InstructGPT trained a 6B one); GRPO "
                        "replaces it with the mean reward of the group."),
             ]),
    Question("The GRPOTrainer run logged mean rewards of about 0.5, while the course's own sampling of the same SFT "
             "model was exact on 0.733 of all the addition prompts. What explains most of the difference?", choices=[
                 Choice("Which prompts were drawn: 10 steps of 2 prompts saw only 20 distinct prompts, on which the "
                        "course's sampling of the SFT model also scores lower", True,
                        "On those 20 prompts the course's sampling gave 0.606; the rest of the gap is within the "
                        "noise of 160 answers, which are not even independent (8 per prompt)."),
                 Choice("TRL formats the answers differently, so the exact-match check fails", False,
                        "The reward function strips the completion, and the wrong TRL answers printed are arithmetic "
                        "slips such as '19 plus 19 is 37.', not formatting differences."),
                 Choice("GRPO made the model worse during the run", False,
                        "The gap is mostly present before any learning: the course's sampling of the untrained SFT "
                        "model on the same prompts also scores well below 0.733."),
             ]),
    Question("Grouping training examples of similar length into the same batch (group_by_length) cut the padding of "
             "the SFT training set from 50% to 2% of the token positions. What does it change?", choices=[
                 Choice("The compute spent per epoch; every example is still seen once per epoch", True,
                        "A batch pads to its longest example, so batches of similar lengths waste few positions. "
                        "Which examples are seen is unchanged; only how they are batched together differs."),
                 Choice("It drops the longest examples to shorten the batches", False,
                        "No example is dropped: the sampler sorts within groups of batches, cuts batches, and "
                        "shuffles the order of the batches."),
                 Choice("It reduces the number of real tokens the model trains on", False,
                        "The real tokens are the same data; the positions saved are padding, which carries no "
                        "loss anyway."),
             ]),
]


# Chapter 15
QUESTIONS_14 = [
    Question("Conservative DPO with label smoothing eps = 0.2 and beta = 0.5: at which margin h (in nats) "
             "does the loss -(1 - eps) log sigma(beta h) - eps log sigma(-beta h) stop pushing?",
             answer=2.7726, tolerance=0.02,
             why="Its derivative is zero where sigma(beta h) = 1 - eps, i.e. beta h = log((1 - eps) / eps) = "
                 "log 4, so h = log 4 / 0.5 = 2.77. Beyond it the loss pushes the margin back down: cDPO "
                 "believes a fifth of the labels are wrong, so it never becomes certain."),
    Question("The labelers always prefer the same answer of a pair. Why can DPO's margin keep growing on "
             "such pairs while IPO's stops?", choices=[
                 Choice("DPO's push, beta sigma(-beta h), is positive at every margin, so the optimum is an "
                        "infinite margin; IPO's square pulls the per-token margin to 1/(2 beta) and no "
                        "further", True,
                        "This is Azar et al.'s argument for IPO. Section 2's plot shows it: DPO's push "
                        "decays but never reaches zero, IPO's crosses zero at its target. A margin that "
                        "keeps growing is a policy moving ever further from the reference."),
                 Choice("IPO uses a smaller learning rate", False,
                        "Both run with the same optimiser settings here; the difference is in the loss's "
                        "shape, not the step size."),
                 Choice("DPO has no reference model", False,
                        "DPO does use the reference: the margin is a difference of log-ratios to it. SimPO "
                        "and ORPO are the ones without one."),
             ]),
    Question("A GRPO group of four answers gets reward-model scores 0.501, 0.500, 0.499 and 0.500. What is "
             "the first answer's advantage (r - group mean) / (std + 1e-4), with the unbiased std?",
             answer=1.091, tolerance=0.01,
             why="The mean is 0.500; the unbiased std is sqrt((0.001^2 + 0.001^2) / 3) = 0.000816, so the "
                 "advantage is 0.001 / 0.000916 = 1.09 (1.22 without the 1e-4). A difference of 0.001, far "
                 "below the reward model's noise, gets about the weight of a clear win: dividing by the group's "
                 "std makes every group count about equally, however little its scores differ. Dr. GRPO's "
                 "advantage here is 0.001."),
    Question("RLOO's baseline for answer i is the mean reward of the *other* answers to the same prompt. "
             "Why leave answer i out?", choices=[
                 Choice("So that the baseline does not depend on answer i's own sample: then it does not "
                        "change the expected gradient (chapter 08's argument), and the estimate stays "
                        "unbiased", True,
                        "With i included, the baseline moves with r_i, so A_i = r_i - mean shrinks every "
                        "advantage by (G - 1)/G and correlates the baseline with the sample; leaving it "
                        "out keeps the baseline independent of that answer."),
                 Choice("To save compute", False,
                        "The leave-one-out mean costs the same as the full mean: (sum - r_i) / (G - 1)."),
                 Choice("Because the answer's own reward is not known yet", False,
                        "Every answer in the group is scored before any advantage is computed."),
             ]),
    Question("Over 5 seeds, method A's gold gain is 0.33 [0.28, 0.38] and method B's 0.31 [0.26, 0.36]; "
             "paired by seed (the same data and prompts), A - B is 0.02 [0.005, 0.035]. What can you "
             "conclude?", choices=[
                 Choice("A beats B in this setting, by a small amount: the paired interval excludes 0, "
                        "because what varies from seed to seed (the data) moves both methods together", True,
                        "The separate intervals include the seed-to-seed variation both methods share; the "
                        "paired difference removes it. Overlapping intervals are not evidence of no "
                        "difference. Testing many pairs, about one in twenty of those that truly do not differ "
                        "will exclude 0 by chance: correct for the number of tests (section 8)."),
                 Choice("Nothing: the two intervals overlap, so the difference is not significant", False,
                        "Overlap of separate intervals is a weak test; when seeds are shared the paired "
                        "difference is the right one, and here it excludes 0."),
                 Choice("A is better on every possible data set and model", False,
                        "The result holds for this tiny world, these settings and this budget; a "
                        "conclusion is only as wide as the experiment."),
             ]),
]


QUESTIONS_15 = [
    Question("Two models meet in an arena. Model A wins 30 of their 40 comparisons and loses 10 (no ties). "
             "What Bradley-Terry score gap s_A - s_B does maximum likelihood give (natural log)?",
             answer=1.0986, tolerance=0.01,
             why="With two models the likelihood is p^30 (1-p)^10 with p = sigma(s_A - s_B), maximised at "
                 "p = 30/40 = 0.75, so s_A - s_B = log(0.75 / 0.25) = log 3 = 1.10."),
    Question("A pairwise judge gives P(first better) = p(a, b). Swap-averaging uses "
             "p'(a, b) = (p(a, b) + 1 - p(b, a)) / 2. Why does p' have no position bias at all?", choices=[
                 Choice("Because p'(a, b) + p'(b, a) = 1 for every pair, so whichever order the pair is shown "
                        "in, p' picks the same answer", True,
                        "Add the two: (p(a,b) + 1 - p(b,a) + p(b,a) + 1 - p(a,b)) / 2 = 1. A judge whose "
                        "verdicts in the two orders sum to one cannot prefer a position; its first-shown "
                        "rate is exactly one half, as section 2 printed."),
                 Choice("Because averaging two noisy verdicts halves the noise", False,
                        "Averaging does reduce noise, but position bias is not noise: it is a systematic "
                        "pull towards one slot. What removes it is the symmetry p'(a,b) + p'(b,a) = 1."),
                 Choice("Because the judge was trained on pairs in random order", False,
                        "Section 2's judge was trained on random orders and still showed a strong position "
                        "bias; training does not guarantee symmetry, the averaging formula does."),
             ]),
    Question("Section 2's reward model (chapter 09's) was trained on the simulated labelers' noisy labels, yet it "
             "agrees with gold far more often than those labelers do. (Section 2's swap-averaged judge, trained on "
             "fewer labels, only about as often: its interval covers the labelers' rate.) How can a model trained "
             "on noisy labels beat them?", choices=[
                 Choice("The labelers' errors are random and differ from pair to pair; a model fitted to many "
                        "pairs learns what they agree on and averages the noise out", True,
                        "Each simulated labeler picks the worse answer with a probability that depends only on "
                        "the gold gap, independently for each pair. The reward model learns the pattern behind "
                        "thousands of such pairs; on a new pair its verdict reflects that pattern, not one "
                        "labeler's coin flip. Systematic errors would not average out this way, and a model that "
                        "learns the pattern less well (the judge) need not beat its labelers at all."),
                 Choice("The reward model saw the gold reward during training", False,
                        "It saw only the labelers' choices; the gold reward is used only to audit it."),
                 Choice("It cannot: the comparison must be a bug", False,
                        "It is expected when label noise is random; it would not happen if the labelers shared "
                        "a bias."),
             ]),
    Question("A reward model is 90% accurate on a benchmark of mixed pairs. Why can the per-category "
             "accuracy of section 3 still matter for RL against it?", choices=[
                 Choice("A policy optimised against it will find the category where it is wrong: the average "
                        "hides one kind of answer it scores the wrong way round, and RL pushes towards it", True,
                        "Chapter 12's over-optimised policy found exactly such blind spots. An optimiser "
                        "does not sample pairs at random as a benchmark does; it seeks the errors."),
                 Choice("It does not matter: 90% accuracy is enough for PPO", False,
                        "Average accuracy says how often random pairs are ordered right, not whether some "
                        "direction of change is rewarded wrongly; RL follows the reward's direction."),
                 Choice("Categories matter only for evaluation, never for training", False,
                        "A blind category is a direction in which the reward model's gradient points the "
                        "wrong way, which is exactly what RL follows."),
             ]),
    Question("In the RLAIF sweep, DPO on 2,000 labels from the judge asked once (no swapping) left the "
             "gold reward near the SFT model's, in two of three seeds. What explains it?", choices=[
                 Choice("That judge chose by position far more than by quality, so its labels agreed with "
                        "gold about half the time: DPO got almost no signal to follow", True,
                        "Labels at chance carry no preference on average: the pushes towards one answer and "
                        "towards the other cancel, so the policy barely moves. The swap-averaged labels "
                        "from the same judge carried the signal, because averaging removes the position pull."),
                 Choice("DPO needs more than 2,000 pairs to move at all", False,
                        "The same 2,000 pairs with human labels, or with swap-averaged AI labels, raised the "
                        "gold reward clearly."),
                 Choice("AI feedback can never help", False,
                        "The swap-averaged AI labels came close to the human labels of the same pairs in "
                        "this sweep (a little lower in two of three seeds; three seeds cannot show the two "
                        "equal): how the judge is asked mattered a great deal."),
             ]),
]


QUESTIONS: dict[str, list[Question]] = {
    "00": QUESTIONS_00,
    "01": QUESTIONS_01,
    "02": QUESTIONS_02,
    "03": QUESTIONS_03,
    "04": QUESTIONS_04,
    "05": QUESTIONS_05,
    "06": QUESTIONS_06,
    "07": QUESTIONS_07,
    "08": QUESTIONS_08,
    "09": QUESTIONS_09,
    "10": QUESTIONS_10,
    "11": QUESTIONS_11,
    "12": QUESTIONS_12,
    "13": QUESTIONS_13,
    "14": QUESTIONS_14,
    "15": QUESTIONS_15,
}


def quiz(chapter: str) -> SelfCheck:
    """The self-check widget of chapter ``chapter`` (``"04"``, ``"08"``, ...)."""
    if chapter not in QUESTIONS:
        raise KeyError(f"no self-check questions for chapter {chapter!r}; chapters with questions: "
                       f"{', '.join(sorted(QUESTIONS))}")
    return SelfCheck(QUESTIONS[chapter], title=f"Self-check, chapter {chapter}")
