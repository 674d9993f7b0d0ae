"""The tiny world: a corpus, instruction tasks with exact answers, and a hidden gold reward.

Everything here is generated deterministically from a seed with :class:`random.Random`,
so the same seed always gives the same corpus, the same tasks and the same splits.

Three things live in the tiny world:

* **A pretraining corpus** of short English-like documents (stories, arithmetic facts,
  words written in big letters or backwards, stories followed by questions, reviews,
  sentences about animals and things). The base model learns the world's words and
  skills from it.
* **Instruction tasks** whose answers can be checked exactly: ``add``, ``uppercase``,
  ``reverse``, ``qa`` and ``sentiment``. The ``test`` split holds new combinations of
  words seen in training; the ``test_heldout_words`` split holds words that never appear
  in any instruction-training example (they do appear in the pretraining corpus).
* **Open-ended prompts** ("Write a sentence about a dog.") scored by :func:`gold_reward`,
  the hidden "what humans really want" used to simulate human feedback later on.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

from datasets import Dataset, DatasetDict

# ---------------------------------------------------------------------------------
# The words of the world
# ---------------------------------------------------------------------------------
NAMES = ["Tom", "Mia", "Sam", "Lily", "Max", "Emma", "Ben", "Anna", "Leo", "Zoe",
         "Jack", "Ella", "Noah", "Lucy", "Finn", "Ruby", "Owen", "Nora", "Luke", "Ivy"]
ANIMALS = ["dog", "cat", "bird", "fish", "horse", "cow", "pig", "duck", "frog", "fox",
           "bear", "lion", "mouse", "rabbit", "sheep", "goat", "owl", "wolf", "deer", "bee"]
COLOURS = ["red", "blue", "green", "yellow", "black", "white", "pink", "brown", "orange", "purple"]
OBJECTS = ["ball", "cup", "hat", "book", "box", "kite", "bag", "car", "boat", "bell",
           "key", "lamp", "drum", "coat", "shoe", "map", "pen", "toy", "cake", "apple"]
PLACES = ["park", "farm", "river", "forest", "garden", "school", "beach", "house", "hill", "town"]
POSITIVE = ["happy", "kind", "nice", "good", "great", "lovely", "bright", "brave",
            "calm", "sweet", "funny", "friendly"]
NEGATIVE = ["sad", "bad", "angry", "mean", "dirty", "lazy", "rude", "scary",
            "grumpy", "ugly", "noisy", "awful"]
VERBS = ["runs", "jumps", "sings", "sleeps", "plays", "swims", "eats", "walks", "hides", "rests"]
MAX_ADD = 20  # operands of the addition task are 0..MAX_ADD

#: Words that never appear in instruction *training* examples (they do appear in the corpus).
HELDOUT_COPY_WORDS = {"fox", "owl", "drum", "kite", "purple", "Finn", "Ivy"}
HELDOUT_SENTIMENT_WORDS = {"brave", "sweet", "grumpy", "rude"}

#: The exactly checkable instruction tasks.
TASKS = ["add", "uppercase", "reverse", "qa", "sentiment"]
#: Subjects of the open-ended prompts scored by the gold reward.
SUBJECTS = ANIMALS + OBJECTS
CONTENT_WORDS = set(NAMES + ANIMALS + COLOURS + OBJECTS + PLACES + POSITIVE + NEGATIVE + VERBS)

DEFAULT_SEED = 0


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------------
# Sentences about a subject (used by the corpus and as SFT answers to open prompts)
# ---------------------------------------------------------------------------------
def sentence_about(rng: random.Random, subject: str, tone: str | None = None) -> str:
    """One sentence about ``subject`` with a positive, negative or neutral ``tone``."""
    tone = tone or rng.choice(["positive", "negative", "neutral"])
    adjs = POSITIVE if tone == "positive" else NEGATIVE if tone == "negative" else COLOURS
    a, b = rng.sample(adjs, 2)
    name, place, verb = rng.choice(NAMES), rng.choice(PLACES), rng.choice(VERBS)
    verb = verb if subject in ANIMALS else rng.choice(["is", "stays", "sits"])
    templates = [
        f"The {a} {subject} {verb} in the {place}.",
        f"{name} saw {_article(a)} {a} {subject} near the {place}.",
        f"The {subject} is {a} and {b}.",
        f"{name} has {_article(a)} {a} {subject}.",
        f"{_article(a).capitalize()} {a} {subject} {verb} with {name}.",
    ]
    return rng.choice(templates)


# ---------------------------------------------------------------------------------
# Instruction tasks: (prompt, response) pairs with exact answers
# ---------------------------------------------------------------------------------
ADD_TEMPLATES = ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.",
                 "What do {a} and {b} make?"]
UPPER_TEMPLATES = ["Write in capital letters: {x}", "Make these words uppercase: {x}",
                   "Shout these words: {x}"]
REVERSE_TEMPLATES = ["Reverse the order of these words: {x}", "Write these words backwards: {x}",
                     "Reverse the words: {x}"]
QA_TEMPLATES = ["Read the story and answer the question.\nStory: {story}\nQuestion: {q}",
                "Story: {story}\nQuestion: {q}"]
SENT_TEMPLATES = ["Is this review positive or negative?\nReview: {x}",
                  "Classify the sentiment of this review as positive or negative.\nReview: {x}"]
OPEN_TEMPLATES = ["Write a sentence about a {s}.", "Tell me something about a {s}.",
                  "Describe a {s} in one sentence."]


def _copy_words(rng: random.Random, pool: list[str], n: int) -> list[str]:
    return rng.sample(pool, n)


def make_add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, MAX_ADD), rng.randint(0, MAX_ADD)
    return rng.choice(ADD_TEMPLATES).format(a=a, b=b), f"{a} plus {b} is {a + b}."


def make_uppercase(rng: random.Random, pool: list[str]) -> tuple[str, str]:
    words = _copy_words(rng, pool, rng.randint(2, 4))
    x = " ".join(words)
    return rng.choice(UPPER_TEMPLATES).format(x=x), x.upper()


def make_reverse(rng: random.Random, pool: list[str]) -> tuple[str, str]:
    words = _copy_words(rng, pool, rng.randint(2, 4))
    return rng.choice(REVERSE_TEMPLATES).format(x=" ".join(words)), " ".join(reversed(words))


def possession_story(who: list[str], cols: list[str], objs: list[str]) -> str:
    """"Tom has a red ball. Mia has a blue cup." from parallel lists of names, colours, objects."""
    return " ".join(f"{n} has {_article(c)} {c} {o}." for n, c, o in zip(who, cols, objs))


def make_qa(rng: random.Random, names: list[str], colours: list[str], objects: list[str],
            animals: list[str]) -> tuple[str, str]:
    """A short story about one character (2-3 facts of different kinds, in random order)
    and a question whose answer is one fact, copied from the story.

    The place fact is only ever a distractor: with "Where is ...?" questions the tiny
    model answered with the most frequent place (16% correct), because "Where" is not a
    word of the corpus and so gives it nothing to match against.
    """
    n, c, o, place, animal = (rng.choice(names), rng.choice(colours), rng.choice(objects),
                              rng.choice(PLACES), rng.choice(animals))
    facts = {"have": f"{n} has {_article(c)} {c} {o}.", "place": f"{n} is at the {place}.",
             "animal": f"{n} sees {_article(animal)} {animal}."}
    kinds = rng.sample(list(facts), rng.randint(2, 3))
    story = " ".join(facts[k] for k in kinds)
    ask = rng.choice([k for k in kinds if k != "place"])
    if ask == "have":
        q, ans = rng.choice([(f"What does {n} have?", f"{_article(c)} {c} {o}"),
                             (f"What colour is the {o}?", c)])
    else:
        q, ans = f"What animal does {n} see?", animal
    return rng.choice(QA_TEMPLATES).format(story=story, q=q), ans


def review_text(rng: random.Random, positive: bool, adjs: list[str],
                things: list[str] | None = None) -> str:
    """A one-sentence review of a thing or place using adjectives from ``adjs``."""
    a, b = rng.sample(adjs, 2)
    thing = rng.choice(things or OBJECTS + PLACES)
    return rng.choice([f"The {thing} was {a}.", f"The {thing} was {a} and {b}.",
                       f"I think the {thing} is {a}.", f"What {_article(a)} {a} {thing}!"])


def make_sentiment(rng: random.Random, pos: list[str], neg: list[str],
                   things: list[str]) -> tuple[str, str]:
    positive = rng.random() < 0.5
    x = review_text(rng, positive, pos if positive else neg, things)
    return rng.choice(SENT_TEMPLATES).format(x=x), "positive" if positive else "negative"


def _pools(heldout: bool) -> dict[str, list[str]]:
    """Word pools for training (no held-out words) or for the held-out-words test."""
    if heldout:
        return {"copy": sorted(HELDOUT_COPY_WORDS), "names": NAMES, "colours": COLOURS,
                "objects": OBJECTS, "animals": ANIMALS, "pos": POSITIVE, "neg": NEGATIVE}
    keep = lambda ws, held: [w for w in ws if w not in held]  # noqa: E731
    return {"copy": keep(ANIMALS + COLOURS + OBJECTS + NAMES, HELDOUT_COPY_WORDS),
            "names": keep(NAMES, HELDOUT_COPY_WORDS), "colours": keep(COLOURS, HELDOUT_COPY_WORDS),
            "objects": keep(OBJECTS, HELDOUT_COPY_WORDS), "animals": keep(ANIMALS, HELDOUT_COPY_WORDS),
            "pos": keep(POSITIVE, HELDOUT_SENTIMENT_WORDS), "neg": keep(NEGATIVE, HELDOUT_SENTIMENT_WORDS)}


def make_task_example(rng: random.Random, task: str, heldout: bool = False) -> dict:
    """One instruction example ``{"task", "prompt", "response"}`` of the given task.

    With ``heldout=True`` the example contains at least one held-out word (for ``add``,
    which has no words, the caller holds out operand pairs instead).
    """
    p = _pools(heldout)
    if task == "add":
        prompt, resp = make_add(rng)
    elif task == "uppercase" or task == "reverse":
        make = make_uppercase if task == "uppercase" else make_reverse
        if heldout:  # at least one held-out word among familiar ones
            words = _copy_words(rng, _pools(False)["copy"], rng.randint(1, 3))
            words.insert(rng.randint(0, len(words)), rng.choice(p["copy"]))
            x = " ".join(words)
            tmpl = rng.choice(UPPER_TEMPLATES if task == "uppercase" else REVERSE_TEMPLATES)
            resp = x.upper() if task == "uppercase" else " ".join(reversed(words))
            prompt = tmpl.format(x=x)
        else:
            prompt, resp = make(rng, p["copy"])
    elif task == "qa":
        while True:  # held-out: draw until the story contains a held-out word
            prompt, resp = make_qa(rng, p["names"], p["colours"], p["objects"], p["animals"])
            if not heldout or HELDOUT_COPY_WORDS & set(re.findall(r"\w+", prompt)):
                break
    elif task == "sentiment":
        if heldout:
            positive = rng.random() < 0.5
            held = sorted(HELDOUT_SENTIMENT_WORDS & set(POSITIVE if positive else NEGATIVE))
            a = rng.choice(held)
            x = review_text(rng, positive, [a, a])  # both adjective slots use the held-out word
            x = x.replace(f"{a} and {a}", a)
            prompt = rng.choice(SENT_TEMPLATES).format(x=x)
            resp = "positive" if positive else "negative"
        else:
            prompt, resp = make_sentiment(rng, p["pos"], p["neg"], p["objects"] + PLACES)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return {"task": task, "prompt": prompt, "response": resp}


def heldout_add_pairs(seed: int = DEFAULT_SEED, fraction: float = 0.3) -> dict[str, set[tuple[int, int]]]:
    """Operand pairs ``(a, b)`` of the ``add`` task that never appear in instruction training.

    Returns ``{"validation": pairs, "test": pairs}``: two disjoint halves of the held-out pairs.
    """
    rng = random.Random(f"add-pairs-{seed}")
    pairs = [(a, b) for a in range(MAX_ADD + 1) for b in range(MAX_ADD + 1)]
    held = rng.sample(pairs, int(fraction * len(pairs)))
    return {"validation": set(held[::2]), "test": set(held[1::2])}


_ADD_RE = re.compile(r"(\d+)\D+?(\d+)")


def _add_pair(prompt: str) -> tuple[int, int]:
    m = _ADD_RE.search(prompt)
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def make_instruction_data(seed: int = DEFAULT_SEED, n_train: int = 2000, n_test: int = 200,
                          n_open_train: int = 1000) -> DatasetDict:
    """The instruction data set, as a :class:`datasets.DatasetDict` with four splits.

    * ``train``: ``n_train`` examples per task plus ``n_open_train`` open-ended examples
      (``task == "open"``, response = a sentence of random tone about the subject);
    * ``validation`` and ``test``: ``n_test`` per task, new word combinations only
      (no prompt appears in ``train`` or in another split; ``add`` uses operand pairs
      that no training example uses, see :func:`heldout_add_pairs`);
    * ``test_heldout_words``: ``n_test`` per task except ``add``, each containing a word
      that no training example contains.

    Every row has the string fields ``task``, ``prompt`` and ``response``.
    """
    rng = random.Random(f"instructions-{seed}")
    held = heldout_add_pairs(seed)
    all_held = held["validation"] | held["test"]
    train: list[dict] = []
    seen: set[str] = set()
    for task in TASKS:
        count = 0
        while count < n_train:
            ex = make_task_example(rng, task)
            if task == "add" and _add_pair(ex["prompt"]) in all_held:
                continue
            train.append(ex)
            seen.add(ex["prompt"])
            count += 1
    held_words = HELDOUT_COPY_WORDS | HELDOUT_SENTIMENT_WORDS
    n_open = 0
    while n_open < n_open_train:
        s = rng.choice(SUBJECTS)
        row = {"task": "open", "prompt": rng.choice(OPEN_TEMPLATES).format(s=s),
               "response": sentence_about(rng, s)}
        if not held_words & set(re.findall(r"\w+", row["prompt"] + " " + row["response"])):
            train.append(row)  # held-out words stay out of every training example
            n_open += 1
    rng.shuffle(train)

    def fresh(split_rng: random.Random, heldout: bool, avoid: set[str],
              add_pairs: set[tuple[int, int]]) -> list[dict]:
        rows: list[dict] = []
        for task in TASKS:
            if heldout and task == "add":
                continue
            count = 0
            while count < n_test:
                ex = make_task_example(split_rng, task, heldout=heldout)
                if ex["prompt"] in avoid:
                    continue
                if task == "add" and _add_pair(ex["prompt"]) not in add_pairs:
                    continue
                avoid.add(ex["prompt"])
                rows.append(ex)
                count += 1
        return rows

    avoid = set(seen)
    validation = fresh(random.Random(f"validation-{seed}"), False, avoid, held["validation"])
    test = fresh(random.Random(f"test-{seed}"), False, avoid, held["test"])
    test_held = fresh(random.Random(f"test-heldout-{seed}"), True, avoid, set())
    return DatasetDict({name: Dataset.from_list(rows) for name, rows in
                        [("train", train), ("validation", validation), ("test", test),
                         ("test_heldout_words", test_held)]})


def per_task(rows: Iterable[dict], n: int, tasks: Iterable[str] = TASKS) -> list[dict]:
    """The first ``n`` rows of each task in ``tasks``, grouped by task in that order."""
    rows = list(rows)
    return [r for t in tasks for r in [r for r in rows if r["task"] == t][:n]]


def open_prompts(seed: int = DEFAULT_SEED, n: int = 200) -> Dataset:
    """``n`` open-ended prompts with their ``subject``, for sampling and preference data."""
    rng = random.Random(f"open-{seed}")
    rows = []
    for _ in range(n):
        s = rng.choice(SUBJECTS)
        rows.append({"prompt": rng.choice(OPEN_TEMPLATES).format(s=s), "subject": s})
    return Dataset.from_list(rows)


# ---------------------------------------------------------------------------------
# The pretraining corpus
# ---------------------------------------------------------------------------------
def _story(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    animal, place, obj, col = rng.choice(ANIMALS), rng.choice(PLACES), rng.choice(OBJECTS), rng.choice(COLOURS)
    good = rng.random() < 0.5
    adj = rng.choice(POSITIVE if good else NEGATIVE)
    feel = rng.choice(["happy", "glad", "calm"] if good else ["sad", "angry", "grumpy"])
    parts = [f"{a} went to the {place} with {b}.",
             f"They saw {_article(adj)} {adj} {animal}.",
             f"The {animal} {rng.choice(VERBS)} near {_article(col)} {col} {obj}.",
             f"{b} gave the {obj} to {a}.",
             f"{a} was {feel}."]
    k = rng.randint(3, 5)
    return " ".join(parts[:k])


def _add_doc(rng: random.Random) -> str:
    a, b = rng.randint(0, MAX_ADD), rng.randint(0, MAX_ADD)
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    return rng.choice([
        f"{a} plus {b} is {a + b}.",
        f"{a} and {b} make {a + b}.",
        f"{a} + {b} = {a + b}.",
        f"{name} had {a} {obj}s and found {b} more. Now {name} has {a + b} {obj}s.",
    ])


def _all_copy_words() -> list[str]:
    return ANIMALS + COLOURS + OBJECTS + NAMES


def _shout_doc(rng: random.Random) -> str:
    words = rng.sample(_all_copy_words(), rng.randint(1, 4))
    x = " ".join(words)
    name = rng.choice(NAMES)
    return rng.choice([
        f"{name} wrote {x} in big letters: {x.upper()}.",
        f"The sign said {x}. In capital letters it said {x.upper()}.",
        f"{name} shouted {x.upper()}. That means {x}.",
    ])


def _backwards_doc(rng: random.Random) -> str:
    words = rng.sample(_all_copy_words(), rng.randint(2, 4))
    name = rng.choice(NAMES)
    fwd, bwd = " ".join(words), " ".join(reversed(words))
    return rng.choice([
        f"{name} read the words {fwd} backwards: {bwd}.",
        f"The words {fwd} in reverse order are {bwd}.",
    ])


def _qa_doc(rng: random.Random) -> str:
    k = rng.randint(2, 3)
    who, cols, objs = rng.sample(NAMES, k), rng.sample(COLOURS, k), rng.sample(OBJECTS, k)
    story = possession_story(who, cols, objs)
    qs = []
    for _ in range(rng.randint(1, 2)):
        i = rng.randrange(k)
        qs.append(rng.choice([
            f"Who has the {cols[i]} {objs[i]}? {who[i]} has it.",
            f"Who has the {cols[i]} {objs[i]}? {who[i]}.",
            f"What does {who[i]} have? {who[i]} has {_article(cols[i])} {cols[i]} {objs[i]}.",
            f"What does {who[i]} have? {_article(cols[i]).capitalize()} {cols[i]} {objs[i]}.",
            f"What colour is the {objs[i]}? The {objs[i]} is {cols[i]}.",
        ]))
    return story + " " + " ".join(qs)


def _review_doc(rng: random.Random) -> str:
    positive = rng.random() < 0.5
    x = review_text(rng, positive, POSITIVE if positive else NEGATIVE)
    return f"{rng.choice(NAMES)} wrote a review: {x} It is a {'positive' if positive else 'negative'} review."


def _sentence_doc(rng: random.Random) -> str:
    s = rng.choice(SUBJECTS)
    return " ".join(sentence_about(rng, s) for _ in range(rng.randint(1, 3)))


CORPUS_MIX = {"story": (0.14, _story), "add": (0.12, _add_doc), "shout": (0.18, _shout_doc),
              "backwards": (0.12, _backwards_doc), "qa": (0.26, _qa_doc),
              "review": (0.08, _review_doc), "sentence": (0.10, _sentence_doc)}


def make_corpus(n_docs: int = 80_000, seed: int = DEFAULT_SEED, split: str = "train") -> list[str]:
    """``n_docs`` pretraining documents; ``split`` ("train"/"validation") changes the stream."""
    rng = random.Random(f"corpus-{split}-{seed}")
    kinds = list(CORPUS_MIX)
    weights = [CORPUS_MIX[k][0] for k in kinds]
    return [CORPUS_MIX[rng.choices(kinds, weights)[0]][1](rng) for _ in range(n_docs)]


# ---------------------------------------------------------------------------------
# The hidden gold reward
# ---------------------------------------------------------------------------------
#: Words whose repetition the gold reward does not penalise.
FUNCTION_WORDS = {"a", "an", "the", "and", "with", "near", "in", "is", "was", "has", "had",
                  "to", "of", "it", "he", "she", "they", "i", "that", "this", "what"}


@dataclass(frozen=True)
class GoldBreakdown:
    """The components of :func:`gold_reward`; ``total`` is their sum."""
    mentions_subject: float
    tone: float
    repetition: float
    length: float
    ending: float

    @property
    def total(self) -> float:
        return self.mentions_subject + self.tone + self.repetition + self.length + self.ending


def gold_breakdown(subject: str, response: str) -> GoldBreakdown:
    """Score a response to "Write a sentence about a <subject>." component by component.

    * ``mentions_subject``: +1.0 if the subject word appears, else -1.0;
    * ``tone``: +0.5 per *distinct* positive word (at most +1.0), -0.5 per negative word;
    * ``repetition``: -0.5 for every repeated occurrence of a word (little words such as
      "the", "and", "with" in :data:`FUNCTION_WORDS` excepted);
    * ``length``: -0.5 if under 4 words, -0.1 per word beyond 12;
    * ``ending``: -0.5 unless the response is one sentence ending with a full stop.
    """
    words = re.findall(r"[A-Za-z]+", response.lower())
    mentions = 1.0 if subject.lower() in words else -1.0
    pos = len({w for w in words if w in POSITIVE})
    neg = sum(1 for w in words if w in NEGATIVE)
    tone = 0.5 * min(pos, 2) - 0.5 * neg
    content = [w for w in words if w not in FUNCTION_WORDS]
    repetition = -0.5 * (len(content) - len(set(content)))
    length = (-0.5 if len(words) < 4 else 0.0) - 0.1 * max(0, len(words) - 12)
    text = response.strip()
    ending = 0.0 if text.endswith(".") and text.count(".") == 1 else -0.5
    return GoldBreakdown(mentions, tone, repetition, round(length, 6), ending)


def gold_reward(subject: str, response: str) -> float:
    """The hidden gold reward: the sum of the components in :func:`gold_breakdown`."""
    return gold_breakdown(subject, response).total


def subject_of(prompt: str) -> str:
    """The subject word of an open-ended prompt ("Write a sentence about a dog." -> "dog")."""
    for tmpl in OPEN_TEMPLATES:
        pattern = "^" + re.escape(tmpl).replace(re.escape("{s}"), r"(\w+)") + "$"
        m = re.match(pattern, prompt.strip())
        if m:
            return m.group(1)
    raise ValueError(f"not an open-ended prompt of the tiny world: {prompt!r}")


def check_answer(response: str, target: str) -> bool:
    """Exact match after stripping surrounding white space."""
    return response.strip() == target.strip()
