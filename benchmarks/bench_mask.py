"""How fast does filterd find and mask offensive words, and how much does it catch?

Baseline: better-profanity 0.7.0 ``censor`` (whose word list filterd starts from), measured in
the same run. Also measured: alt-profanity-check ``predict_prob`` (a linear SVM on words).

Speed: per-message latency over a fixed corpus of chat messages, after warm-up.
Recall: every better-profanity word that filterd keeps (exclusions applied), plain and in five
obfuscated forms, embedded in a sentence; the share each tool detects (censors, or scores
>= 0.5 for alt-profanity-check).

Run: ``python benchmarks/bench_mask.py``; figures go to ``benchmarks/results/mask.json``.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from filterd.detect.lexicon import Lexicon, baseline_terms
from filterd.mask import apply_masks

warnings.filterwarnings("ignore")  # sklearn version warnings from alt-profanity-check's pickle

from better_profanity import profanity  # noqa: E402
from profanity_check import predict_prob  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "mask.json"
REPEATS = {"filterd": 200, "better_profanity": 3, "alt_profanity_check": 20}

CORPUS = [
    # clean
    "Hi, I was charged $40 twice on my March 2024 bill. Can you check order #12345?",
    "hello",
    "Thanks so much, that fixed it!",
    "My router keeps dropping the connection every evening around 8pm.",
    "Can I change my delivery address to 221B Baker Street?",
    "I'd like to cancel my subscription please.",
    "What is the class of service on my plan? Assess it please.",
    "The cocktail glasses arrived broken, two of the six.",
    "I live in Essex, near Scunthorpe actually, no wait Sussex.",
    "My therapist's office needs a copy of the document.",
    "Is the grape flavour back in stock?",
    "ok",
    "How long will the refund take to show on my card?",
    "I've been a customer for 12 years and never had a problem until now.",
    "Can you send the invoice to my e-mail again, it never arrived.",
    "The analysis in your report was wrong about my usage.",
    "Where is the passion fruit one? The button on the app doesn't work.",
    "I want to upgrade to the 5G plan, what does it cost per month?",
    "Please call me back tomorrow morning, not before 10am.",
    "The package says delivered but it's not here.",
    # frustrated, profane, not aimed at anyone
    "this f*cking phone won't connect",
    "3 hours on hold, this is ridiculous",
    "your service is absolute shit",
    "what the hell is going on with my bill",
    "damn it, the app crashed again",
    "this is bullshit, I paid already",
    "crap, I forgot my password again",
    "The whole thing is a shitshow from start to finish honestly.",
    "I'm so pissed off right now, third time this week!!!",
    "holy shit the price went up again",
    # abusive
    "you fucking idiot",
    "fuck you",
    "you are a useless moron",
    "are you all incompetent fools or what",
    "listen here you stupid bitch",
    "what an asshole, put me through to a manager",
    "you people are scumbags",
    "shut up you loser",
    "you dumbass, I said cancel it",
    "go fuck yourself, jackass",
    # obfuscated
    "f4ck this",
    "this is sh!t",
    "5h1t service",
    "f.u.c.k you",
    "s h i t",
    "f-u-c-k off",
    "fuuuuuck",
    "shiiiiiit",
    "ＦＵＣＫ ＹＯＵ",
    "fu\u200bck you",
    "fuсk you",
    "you a$$hole",
    "you @sshole",
    "b1tch please",
    "what a m0r0n",
    "you're an 1d10t",
    "f*u*c*k this company",
    # long
    "I have been trying to get this sorted for three weeks now and every time I call I get "
    "transferred to someone who has no idea what is going on, then the line drops and I have "
    "to start again from the beginning, which is absolutely fucking ridiculous, and frankly "
    "whoever designed this phone menu is an idiot. Please just refund the $129.99 to my card.",
    "Order 5567-AB arrived with the wrong size, the box was crushed, and the tracking page "
    "still says in transit. I need a replacement before Friday or a full refund, thanks.",
    "sh1t service, f.u.c.k.i.n.g joke of a company, your agents are m0r0ns and "
    "i want my money back NOW",
]

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "$"})
_CYRILLIC = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}


def obfuscations(word: str) -> dict[str, str]:
    """The forms of one word the recall test tries; a form the word cannot take is left out."""
    forms = {"plain": word}
    if not word.isalpha():  # phrases and already-obfuscated entries: plain only
        return forms
    if word.translate(_LEET) != word:
        forms["leet"] = word.translate(_LEET)
    forms["dotted"] = ".".join(word)
    forms["spaced"] = " ".join(word)
    vowel = next((i for i, c in enumerate(word) if c in "aeiou"), len(word) - 1)
    forms["repeated"] = word[: vowel + 1] + word[vowel] * 3 + word[vowel + 1 :]
    glyph = next((i for i, c in enumerate(word) if c in _CYRILLIC), None)
    if glyph is not None:
        forms["homoglyph"] = word[:glyph] + _CYRILLIC[word[glyph]] + word[glyph + 1 :]
    return forms


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    us = sorted(s / 1000 for s in samples_ns)
    q = statistics.quantiles(us, n=100, method="inclusive")
    return {"p50_us": q[49], "p95_us": q[94], "p99_us": q[98], "mean_us": statistics.fmean(us)}


def time_per_message(fn: Callable[[str], object], repeats: int) -> list[int]:
    for text in CORPUS:  # warm-up: caches, lazy loads, branch predictors
        fn(text)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for text in CORPUS:
            t0 = clock()
            fn(text)
            samples.append(clock() - t0)
    return samples


def main() -> None:
    lex = Lexicon.default()
    profanity.load_censor_words()

    def filterd_mask(text: str) -> str:
        return apply_masks(text, lex.find(text), "stars")

    tools: dict[str, Callable[[str], object]] = {
        "filterd": filterd_mask,
        "better_profanity": profanity.censor,
        "alt_profanity_check": lambda text: predict_prob([text]),
    }
    speed = {name: percentiles(time_per_message(fn, REPEATS[name])) for name, fn in tools.items()}
    base = speed["better_profanity"]
    for figures in speed.values():
        figures["speedup_p50_vs_better_profanity"] = base["p50_us"] / figures["p50_us"]
        figures["speedup_p99_vs_better_profanity"] = base["p99_us"] / figures["p99_us"]

    # Recall: each form embedded in a sentence, as a customer would send it.
    cases: list[tuple[str, str, int, int]] = []  # (form, text, start, end)
    for word in baseline_terms():
        for form, variant in obfuscations(word).items():
            text = f"honestly {variant} again"
            cases.append((form, text, 9, 9 + len(variant)))
    texts = [c[1] for c in cases]
    detected = {
        "filterd": [
            any(s.start < end and start < s.end for s in lex.find(text))
            for _, text, start, end in cases
        ],
        "better_profanity": [profanity.censor(t) != t for t in texts],
        "alt_profanity_check": [float(p) >= 0.5 for p in predict_prob(texts)],
    }
    forms = sorted(
        {c[0] for c in cases},
        key=["plain", "leet", "dotted", "spaced", "repeated", "homoglyph"].index,
    )
    recall: dict[str, dict[str, float]] = {}
    for name, hits in detected.items():
        recall[name] = {}
        for form in [*forms, "all"]:
            idx = [i for i, c in enumerate(cases) if form in ("all", c[0])]
            recall[name][form] = sum(hits[i] for i in idx) / len(idx)

    print(f"corpus: {len(CORPUS)} messages; recall terms: {len(baseline_terms())}\n")
    print(f"{'tool':<22}{'p50 us':>10}{'p95 us':>10}{'p99 us':>10}{'x faster p50':>14}")
    for name, f in speed.items():
        print(
            f"{name:<22}{f['p50_us']:>10.1f}{f['p95_us']:>10.1f}{f['p99_us']:>10.1f}"
            f"{f['speedup_p50_vs_better_profanity']:>14.1f}"
        )
    print(f"\n{'recall':<22}" + "".join(f"{form:>11}" for form in [*forms, "all"]))
    for name, r in recall.items():
        print(f"{name:<22}" + "".join(f"{r[form]:>11.3f}" for form in [*forms, "all"]))

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "baseline": "better_profanity",
        "corpus_messages": len(CORPUS),
        "recall_terms": len(baseline_terms()),
        "recall_cases": len(cases),
        "speed": speed,
        "recall": recall,
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "better_profanity": metadata.version("better-profanity"),
            "alt_profanity_check": metadata.version("alt-profanity-check"),
            "pyahocorasick": metadata.version("pyahocorasick"),
        },
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
