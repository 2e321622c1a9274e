"""How long one verdict takes, in-process, on one core: filterd against the field.

Measured in one run on the same messages, after warm-up, one message at a time:
- ``better_profanity.censor`` (the baseline every ratio is against);
- ``filterd.Filter.check`` (whole verdict: detectors, model, decision, masks);
- the served model alone (ONNX Runtime int8, 1 thread);
- the same architecture in torch fp32, 1 thread (why we serve ONNX int8).

Run: ``python benchmarks/bench_check.py`` -> table on stdout, figures in
``benchmarks/results/check.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import short_messages  # noqa: E402


def timed(fn: Callable[[str], object], texts: list[str], warmup: int = 30) -> dict[str, float]:
    for t in texts[:warmup]:
        fn(t)
    ms = []
    for t in texts:
        t0 = time.perf_counter()
        fn(t)
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": round(q[49], 4), "p95_ms": round(q[94], 4), "p99_ms": round(q[98], 4),
            "mean_ms": round(statistics.fmean(ms), 4)}


def main() -> None:
    import torch
    from better_profanity import profanity

    from filterd import Filter

    torch.set_num_threads(1)
    texts = short_messages(300)
    profanity.load_censor_words()
    filt = Filter()
    clf = filt.classifier
    results: dict[str, dict[str, float]] = {}
    results["better_profanity.censor"] = timed(profanity.censor, texts)
    results["filterd.check"] = timed(filt.check, texts)
    results["model only (onnx int8)"] = timed(lambda t: clf.predict([t]), texts)

    from transformers import AutoModel, AutoTokenizer

    from filterd.classify.model import base_model_path

    tok = AutoTokenizer.from_pretrained(str(base_model_path()))
    enc = AutoModel.from_pretrained(str(base_model_path())).eval()

    def torch_fp32(t: str) -> None:
        with torch.inference_mode():
            enc(**tok([t], truncation=True, max_length=64, return_tensors="pt"))

    results["model only (torch fp32)"] = timed(torch_fp32, texts[:150])

    base = results["better_profanity.censor"]["p50_ms"]
    print(f"{'what':<28}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p50 vs better-profanity':>26}")
    for name, r in results.items():
        ratio = base / r["p50_ms"]
        r["speedup_vs_better_profanity_p50"] = round(ratio, 2)
        print(f"{name:<28}{r['p50_ms']:>9.3f}{r['p95_ms']:>9.3f}{r['p99_ms']:>9.3f}"
              f"{ratio:>25.2f}x")
    onnx, tfp = results["model only (onnx int8)"]["p50_ms"], results["model only (torch fp32)"][
        "p50_ms"]
    print(f"onnx int8 is {tfp / onnx:.1f}x faster than torch fp32 at p50 (same architecture)")
    out = Path(__file__).parent / "results" / "check.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"messages": len(texts), "threads": 1, "results": results},
                              indent=1) + "\n")


if __name__ == "__main__":
    main()
