"""Serving runtime: the int8 ONNX model and the fast tokenizer, loaded once, offline.

The only module that imports onnxruntime. The model folder holds ``model.onnx``,
``tokenizer.json`` and ``filterd_model.json``; the files are checked against the
SHA-256 hashes recorded at training time, so a corrupt or swapped file fails loudly
at start-up instead of scoring quietly wrong.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from filterd.classify.batching import size_runs
from filterd.errors import ModelError
from filterd.normalize import clean_for_model
from filterd.types import CATEGORIES, MODEL_FLAGS, ModelOutput

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "filterd-minilm"
# A session run costs about as much as this many tokens before any token is computed, so a
# short text is cheap to pad a little and expensive to run alone (used to group texts).
_CALL_TOKENS = 4


def default_model_dir() -> Path:
    """The shipped model: ``models/filterd-minilm`` in the repo (or beside the package)."""
    return DEFAULT_MODEL_DIR


class OnnxClassifier:
    """The shipped classifier: ``predict(texts)`` -> probabilities, flags, intensity."""

    def __init__(
        self, model_dir: Path | None = None, threads: int = 1, verify: bool = True,
        max_padding: float | None = 1.3, max_run: int = 1, parallel: int = 1,
        emoji_as_words: bool | None = None,
    ) -> None:
        """``max_padding``: a call's texts are sorted by token length and run in groups
        whose padded size stays within this factor of their real size (``None``: one group
        padded to the longest text, as before). Batches of chat messages differ a lot in
        length, and the model's cost grows with padded tokens (benchmarks/bench_service.py).
        ``max_run``: the most texts in one session run. The default, 1, runs every text
        alone, so a message's verdict never depends on what else shares the call: the int8
        model quantises its activations dynamically, with one scale per run, and batched
        with other texts a message's scores moved by up to 0.15 and 2.2% of the top
        categories flipped (640 training-set texts in runs of 20 against alone). Alone costs
        about 18% more model CPU per text than runs of 20 (2.05 against 1.74 ms); a
        ``:batch``, a coalesced pass and ``filterd check`` now give one message one verdict.
        Larger runs are for throughput experiments only.
        ``parallel``: session runs of one call that may execute at once, on a small pool of
        threads (onnxruntime's ``run`` is thread-safe and releases the GIL). Several texts
        in one call (a ``:batch``, a coalesced pass) then use several cores with one
        intra-op thread each, which scales far better on short texts than intra-op threads
        do; every text still runs alone, so scores are identical. 0: one per CPU this
        process may use, at most 4."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir or default_model_dir())
        meta_path = self.model_dir / "filterd_model.json"
        if not meta_path.exists():
            raise ModelError(
                f"No model at {self.model_dir} (missing filterd_model.json). "
                "Set FILTERD_MODEL_DIR or run `filterd train`."
            )
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        if self.meta.get("categories") != list(CATEGORIES) or self.meta.get("flags") != list(
            MODEL_FLAGS
        ):
            raise ModelError(f"Model at {self.model_dir} has other labels than this filterd.")
        if verify:
            from filterd.classify.hashing import sha256

            for name, want in self.meta.get("sha256", {}).items():
                got = sha256(self.model_dir / name)
                if got != want:
                    raise ModelError(
                        f"{self.model_dir / name} has SHA-256 {got[:12]}..., the model card "
                        f"records {want[:12]}...: the file is corrupt or was replaced."
                    )
        self.max_len = int(self.meta.get("max_len", 64))
        self.temperature = float(self.meta.get("temperature", 1.0))
        # ``emoji_as_words``: None reads emoji as the model was trained to (its meta file;
        # models up to v7 read every emoji as [UNK], the shipped one their names). An
        # operator may override it (FILTERD_MODEL_EMOJI_AS_WORDS; the model card measures
        # what that does to v7).
        self.emoji_as_words = (bool(self.meta.get("emoji_as_words", False))
                               if emoji_as_words is None else emoji_as_words)
        # ``drop_handles``: the model was trained without the ``@user``/``http`` tokens
        # (``filterd train --drop-handles``), so serving drops them too
        self.drop_handles = bool(self.meta.get("drop_handles", False))
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_len)
        self.tokenizer.no_padding()  # padded per run of similar lengths, in predict
        self.max_padding = max_padding
        self.max_run = max_run
        if parallel <= 0:
            parallel = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                           else (os.cpu_count() or 1))
        self.parallel = parallel
        self._pool: ThreadPoolExecutor | None = None  # made on the first call with 2+ runs
        self._pool_lock = threading.Lock()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own untyped errors
            raise ModelError(f"Could not load {self.model_dir / 'model.onnx'}: {e}") from e

    def _run_all(self, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
        return [self.session.run(None, feed) for feed in feeds]

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="onnx-run")
            return self._pool

    def close(self) -> None:
        """Stop the run threads (they are made again if the classifier is used later)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def predict(self, texts: Sequence[str]) -> list[ModelOutput]:
        if not texts:
            return []
        encs = self.tokenizer.encode_batch(
            [clean_for_model(t, emoji_as_words=self.emoji_as_words,
                             drop_handles=self.drop_handles) for t in texts])
        sizes = [len(e.ids) for e in encs]
        if self.max_padding is None:
            runs = [list(range(len(encs)))]
        else:
            runs = size_runs([n + _CALL_TOKENS for n in sizes], self.max_run, self.max_padding)
        feeds: list[dict[str, np.ndarray]] = []
        for run in runs:
            width = max(sizes[i] for i in run)
            ids = np.zeros((len(run), width), dtype=np.int64)  # 0 is [PAD]
            mask = np.zeros((len(run), width), dtype=np.int64)
            for row, i in enumerate(run):
                ids[row, : sizes[i]] = encs[i].ids
                mask[row, : sizes[i]] = 1
            feeds.append({"input_ids": ids, "attention_mask": mask})
        k = min(self.parallel, len(feeds))
        if k > 1:  # strided shares: runs are sorted by length, so each gets a mix
            shares = [feeds[j::k] for j in range(k)]
            done = list(self._threads().map(self._run_all, shares))
            outs: list[list[np.ndarray]] = [None] * len(feeds)  # type: ignore[list-item]
            for j, share_outs in enumerate(done):
                outs[j::k] = share_outs
        else:
            outs = self._run_all(feeds)
        parts = list(zip(runs, outs, strict=True))
        if len(parts) == 1 and parts[0][0] == list(range(len(texts))):
            cat, flags, inten = parts[0][1]
        else:  # back to the caller's order
            order = np.argsort(np.array([i for run, _ in parts for i in run]))
            cat, flags, inten = (np.concatenate([p[1][k] for p in parts])[order]
                                 for k in range(3))
        z = cat / self.temperature
        z = z - z.max(axis=1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
        fprobs = 1.0 / (1.0 + np.exp(-flags))
        iprob = 1.0 / (1.0 + np.exp(-inten))
        return [
            ModelOutput(
                scores={c: float(probs[i, j]) for j, c in enumerate(CATEGORIES)},
                flag_scores={f: float(fprobs[i, j]) for j, f in enumerate(MODEL_FLAGS)},
                intensity=float(iprob[i]),
            )
            for i in range(len(texts))
        ]
