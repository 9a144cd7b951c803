"""Does fine-tuning the encoder on the routing labels beat the shipped design (a frozen
all-MiniLM-L6-v2 embedding and an MLP)? A GPU experiment for issue 7, not part of the product.

    python3 training/router_finetune.py --encoder DIR --data routerbench-train.jsonl [--folds 5]

Same folds for both arms (seeded shuffle, k folds). Arm "frozen": mean-pooled MiniLM embedding,
then an MLP (384 → 256 → models, ReLU, dropout 0.2) trained with AdamW and BCE, early stopping on a
15% split of the training folds. Arm "fine-tuned": the same head on top of MiniLM, every weight
trained (encoder learning rate 2e-5, head 1e-3), same stopping rule. Also: the frozen arm as the
mean of 5 MLPs from different seeds, and each arm with a per-prompt predicted cost (ridge regression
from the embedding to log cost per model) in place of the mean cost. All predict each model's
chance of answering correctly; the dial and AIQ are computed as `cherrypick router crossval` does
(src/router/utility.rs, metrics.rs): utility = quality - w * cost / max cost with each model's mean
training-fold cost, 41 weights from 1e6 to 0, AIQ = area under the non-decreasing upper convex hull
of (mean actual cost, mean quality) over the single models' cost range.
"""
import argparse
import json
import random

import numpy as np
import torch
from transformers import BertModel, PreTrainedTokenizerFast


def load(path):
    rows = [json.loads(line) for line in open(path)]
    models = sorted(rows[0]["quality"])
    q = np.array([[r["quality"][m] for m in models] for r in rows], dtype=np.float32)
    c = np.array([[r["cost_usd"][m] for m in models] for r in rows], dtype=np.float64)
    return [r["prompt"] for r in rows], models, q, c


class Router(torch.nn.Module):
    def __init__(self, encoder_dir, models):
        super().__init__()
        self.bert = BertModel.from_pretrained(encoder_dir, add_pooling_layer=False).float()
        self.head = torch.nn.Sequential(torch.nn.Linear(384, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                        torch.nn.Linear(256, models))

    def embed(self, enc):
        h = self.bert(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)


def fit(model, inputs, q, train_idx, device, tune_encoder, epochs=60, bs=32):
    """inputs(idx) -> head input for those rows; early stopping on 15% of train_idx."""
    rng = np.random.default_rng(0)
    idx = rng.permutation(train_idx)
    cut = int(len(idx) * 0.85)
    tr, va = idx[:cut], idx[cut:]
    groups = [{"params": model.head.parameters(), "lr": 1e-3}]
    if tune_encoder:
        groups.append({"params": model.bert.parameters(), "lr": 2e-5})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    lossf = torch.nn.BCEWithLogitsLoss()
    target = torch.tensor(q, device=device)
    best, best_state, patience = float("inf"), None, 0
    for _ in range(epochs):
        model.train()
        for i in range(0, len(tr), bs):
            b = tr[i:i + bs]
            loss = lossf(model.head(inputs(b)), target[b])
            loss.backward()
            opt.step()
            opt.zero_grad()
        rng.shuffle(tr)
        model.eval()
        with torch.no_grad():
            val = sum(lossf(model.head(inputs(va[i:i + 256])), target[va[i:i + 256]]).item() * len(va[i:i + 256])
                      for i in range(0, len(va), 256)) / len(va)
        if val < best - 1e-4:
            best, patience = val, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            patience += 1
            if patience >= (3 if tune_encoder else 15):
                break
    model.load_state_dict(best_state)
    return best


def hull(points):
    pts = sorted(points, key=lambda p: (p[0], -p[1]))
    up = []
    for p in pts:
        if up and p[1] <= up[-1][1]:
            continue
        while len(up) >= 2:
            a, b = up[-2], up[-1]
            if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0:
                up.pop()
            else:
                break
        up.append(p)
    return up


def quality_at(h, x):
    if x <= h[0][0]:
        return h[0][1]
    for a, b in zip(h, h[1:]):
        if x <= b[0]:
            return a[1] + (x - a[0]) / (b[0] - a[0]) * (b[1] - a[1])
    return h[-1][1]


def aiq(points, lo, hi):
    h = hull(points)
    xs = [lo] + [p[0] for p in h if lo < p[0] < hi] + [hi]
    return sum((b - a) * (quality_at(h, a) + quality_at(h, b)) / 2 for a, b in zip(xs, xs[1:])) / (hi - lo)


def evaluate(pred, q, c, mean_cost):
    weights = [1e6] + [10 ** (1 - 5 * i / 40) for i in range(1, 40)] + [0.0]
    scaled = mean_cost / mean_cost.max(axis=1, keepdims=True)
    points = []
    for w in weights:
        u = pred - w * scaled
        pick = np.argmax(u - 1e-12 * scaled, axis=1)  # ties go to the cheaper model
        rows = np.arange(len(q))
        points.append((c[rows, pick].mean(), q[rows, pick].mean()))
    singles = [(c[:, m].mean(), q[:, m].mean()) for m in range(q.shape[1])]
    lo, hi = min(p[0] for p in singles), max(p[0] for p in singles)
    return aiq(points, lo, hi), aiq(singles, lo, hi)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--encoder", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(42)
    prompts, models, q, c = load(args.data)
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{args.encoder}/tokenizer.json", cls_token="[CLS]",
                                  sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    enc = tok(prompts, truncation=True, max_length=256, padding=True, return_tensors="pt").to(device)
    order = np.random.default_rng(42).permutation(len(prompts))
    folds = [order[f::args.folds] for f in range(args.folds)]
    preds = {"frozen": np.zeros_like(q), "fine-tuned": np.zeros_like(q), "frozen, 5 seeds averaged": np.zeros_like(q)}
    mean_cost = np.zeros_like(c)
    predicted_cost = np.zeros_like(c)
    with torch.no_grad():
        base = Router(args.encoder, len(models)).to(device).eval()
        all_embeddings = torch.cat([base.embed({k: v[i:i + 256] for k, v in enc.items()})
                                    for i in range(0, len(prompts), 256)])
    for f, test in enumerate(folds):
        train = np.setdiff1d(order, test)
        mean_cost[test] = c[train].mean(axis=0)
        # Per-prompt cost: ridge regression from the embedding to log cost, one output per model.
        x = np.hstack([all_embeddings.cpu().numpy(), np.ones((len(prompts), 1), np.float32)]).astype(np.float64)
        w = np.linalg.solve(x[train].T @ x[train] + 1e-2 * np.eye(x.shape[1]), x[train].T @ np.log(c[train]))
        predicted_cost[test] = np.exp(x[test] @ w)
        ensemble = []
        for seed in range(5):
            torch.manual_seed(1000 * seed + f)
            model = Router(args.encoder, len(models)).to(device)
            fit(model, lambda b: all_embeddings[b], q, train, device, False)
            model.eval()
            with torch.no_grad():
                ensemble.append(torch.sigmoid(model.head(all_embeddings[test])).cpu().numpy())
        preds["frozen, 5 seeds averaged"][test] = np.mean(ensemble, axis=0)
        for arm in ("frozen", "fine-tuned"):
            torch.manual_seed(42 + f)
            model = Router(args.encoder, len(models)).to(device)
            tune = arm == "fine-tuned"
            if tune:
                def inputs(b):
                    return model.embed({k: v[b] for k, v in enc.items()})
            else:
                with torch.no_grad():
                    model.eval()
                    frozen = torch.cat([model.embed({k: v[i:i + 256] for k, v in enc.items()})
                                        for i in range(0, len(prompts), 256)])

                def inputs(b):
                    return frozen[b]
            val = fit(model, inputs, q, train, device, tune)
            model.eval()
            with torch.no_grad():
                preds[arm][test] = torch.sigmoid(torch.cat([model.head(inputs(test[i:i + 128]))
                                                            for i in range(0, len(test), 128)])).cpu().numpy()
            print(json.dumps({"fold": f, "arm": arm, "validation_bce": round(val, 4)}), flush=True)
    for arm, pred in preds.items():
        router, zero = evaluate(pred, q, c, mean_cost)
        print(json.dumps({"arm": arm, "aiq": round(router, 4), "zero_router_aiq": round(zero, 4)}), flush=True)
    for arm in ("frozen", "frozen, 5 seeds averaged"):
        router, _ = evaluate(preds[arm], q, c, predicted_cost)
        print(json.dumps({"arm": arm + ", per-prompt predicted cost", "aiq": round(router, 4)}), flush=True)
    oracle = evaluate(q + 1e-6 * (1 - c / c.max()), q, c, mean_cost)[0]
    print(json.dumps({"oracle_like_aiq": round(oracle, 4)}))


if __name__ == "__main__":
    main()
