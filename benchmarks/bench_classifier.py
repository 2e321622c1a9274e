"""The classifier against the field: is the served model fast enough to sit in the path?

One thread, same messages, same run. Rows:
- filterd's served model (ONNX Runtime int8, the shipped files);
- the same MiniLM-L6 architecture in torch fp32 (what serving without export would cost);
- a BERT-base sized encoder (12 layers, 768 hidden: the size of classic toxicity models
  such as detoxify's original), built from a ``BertConfig`` with random weights (weights do
  not change speed), in torch fp32 -- the baseline every ratio is against.
At batch 1 (one chat message) and batch 32 (a burst), max 64 tokens like serving.

Run: ``python benchmarks/bench_classifier.py`` -> table, ``benchmarks/results/classifier.json``.
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


def timed(fn: Callable[[list[str]], object], batches: list[list[str]], warmup: int = 3) -> dict[
    str, float
]:
    for b in batches[:warmup]:
        fn(b)
    ms = []
    for b in batches:
        t0 = time.perf_counter()
        fn(b)
        ms.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": round(q[49], 3), "p95_ms": round(q[94], 3), "p99_ms": round(q[98], 3),
            "per_message_p50_ms": round(q[49] / len(batches[0]), 4)}


def main() -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    from filterd.classify.model import base_model_path
    from filterd.classify.onnx import OnnxClassifier

    torch.set_num_threads(1)
    texts = short_messages(320)
    served = OnnxClassifier(threads=1)
    tok = AutoTokenizer.from_pretrained(str(base_model_path()))
    minilm = AutoModel.from_pretrained(str(base_model_path())).eval()
    bert_base = BertModel(BertConfig()).eval()  # 12 x 768, bert-base dimensions

    def torch_fn(model: torch.nn.Module) -> Callable[[list[str]], object]:
        def run(batch: list[str]) -> object:
            with torch.inference_mode():
                enc = tok(batch, truncation=True, max_length=64, padding=True,
                          return_tensors="pt")
                return model(**enc)
        return run

    results: dict[str, dict[str, dict[str, float]]] = {}
    for bs, n in ((1, 150), (32, 8)):
        batches = [texts[i * bs : (i + 1) * bs] for i in range(n)]
        r = {
            "bert-base fp32 (torch)": timed(torch_fn(bert_base), batches),
            "MiniLM-L6 fp32 (torch)": timed(torch_fn(minilm), batches),
            "filterd served (onnx int8)": timed(served.predict, batches),
        }
        base = r["bert-base fp32 (torch)"]["p50_ms"]
        for v in r.values():
            v["speedup_vs_bert_base_p50"] = round(base / v["p50_ms"], 2)
        results[f"batch {bs}"] = r
    print(f"{'batch':<9}{'model':<30}{'p50 ms':>9}{'p99 ms':>9}{'ms/msg':>9}{'vs bert-base':>14}")
    for b, r in results.items():
        for name, v in r.items():
            print(f"{b:<9}{name:<30}{v['p50_ms']:>9.2f}{v['p99_ms']:>9.2f}"
                  f"{v['per_message_p50_ms']:>9.3f}{v['speedup_vs_bert_base_p50']:>13.1f}x")
    out = Path(__file__).parent / "results" / "classifier.json"
    out.write_text(json.dumps({"threads": 1, "max_len": 64, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
