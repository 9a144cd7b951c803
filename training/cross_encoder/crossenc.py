#!/usr/bin/env python3
"""Cross-encoder verifier study for the semantic cache (issue 3), CPU only.

    python3 training/cross_encoder/crossenc.py train --steps N      # fine-tune, saves /tmp/cross-encoder/
    python3 training/cross_encoder/crossenc.py eval  [--limit M]    # score the held-out fold, print rates
    python3 training/cross_encoder/crossenc.py latency              # batch-1, length-64 inference time
    python3 training/cross_encoder/crossenc.py combo                # logistic blend of CE + cosine (2-fold CV)

Split: even pair_id = train, odd pair_id = test. Any training pair whose text_a or text_b (lowercased,
spaces collapsed) also appears in the test fold is dropped, so no test question was seen in training.
Model: BertModel initialised from the local all-MiniLM-L6-v2 weights, input [CLS] a [SEP] b [SEP]
(max 64 tokens), linear head on [CLS], BCE on the duplicate label.
"""
import argparse, csv, os, random, sys, time

import numpy as np
import torch
from transformers import BertModel, PreTrainedTokenizerFast

ENC = os.path.expanduser("~/.cache/cherrypick/models/all-MiniLM-L6-v2")
DATA = "/work/shared/data/cache/qqp-dev.tsv"
OUT = "/tmp/cross-encoder"
MAXLEN = 64


def norm(s):
    return " ".join(s.lower().split())


def load():
    with open(DATA, newline="") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(r)
        rows = [(int(x[0]), x[1], x[2], int(x[3])) for x in r if len(x) == 4]
    test = [x for x in rows if x[0] % 2 == 1]
    seen = {norm(x[1]) for x in test} | {norm(x[2]) for x in test}
    train_all = [x for x in rows if x[0] % 2 == 0]
    train = [x for x in train_all if norm(x[1]) not in seen and norm(x[2]) not in seen]
    return train_all, train, test


def tokenizer():
    return PreTrainedTokenizerFast(tokenizer_file=os.path.join(ENC, "tokenizer.json"),
                                   cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                   unk_token="[UNK]", mask_token="[MASK]")


class CrossEncoder(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        self.bert = BertModel.from_pretrained(path, add_pooling_layer=False)
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

    def forward(self, **enc):
        h = self.bert(**enc).last_hidden_state[:, 0]
        return self.head(h).squeeze(-1)


def batches(tok, pairs, bs):
    for i in range(0, len(pairs), bs):
        chunk = pairs[i:i + bs]
        enc = tok([p[0] for p in chunk], [p[1] for p in chunk], truncation=True,
                  max_length=MAXLEN, padding=True, return_tensors="pt")
        yield chunk, enc


def train(args):
    torch.manual_seed(0); random.seed(0)
    train_all, train_rows, test = load()
    print(f"train fold {len(train_all)} pairs, {len(train_rows)} after dropping test-fold texts; test {len(test)}")
    random.shuffle(train_rows)
    # both orders, so the model is symmetric-ish; the cache asks (text_b, text_a)
    rows = train_rows[args.offset:args.offset + args.steps * args.batch]
    pairs = [((b, a) if i % 2 else (a, b)) + (y,) for i, (_, a, b, y) in enumerate(rows)]
    tok = tokenizer()
    model = CrossEncoder(ENC)
    if args.init:
        model.load_state_dict(torch.load(os.path.join(OUT, args.init)))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total = (len(pairs) + args.batch - 1) // args.batch
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    lossf = torch.nn.BCEWithLogitsLoss()
    t0 = time.time()
    for step, (chunk, enc) in enumerate(batches(tok, pairs, args.batch)):
        y = torch.tensor([p[2] for p in chunk], dtype=torch.float32)
        loss = lossf(model(**enc), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
        if step % 20 == 0 or step == total - 1:
            el = time.time() - t0
            print(f"step {step + 1}/{total} loss {loss.item():.4f} {el:.0f}s ({el / (step + 1):.2f}s/step)", flush=True)
    print(f"trained {len(pairs)} pairs in {time.time() - t0:.0f}s")
    os.makedirs(OUT, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(OUT, args.ckpt))


@torch.no_grad()
def embed(model, tok, texts, bs=128):
    out = []
    for i in range(0, len(texts), bs):
        enc = tok(texts[i:i + bs], truncation=True, max_length=128, padding=True, return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        e = (h * m).sum(1) / m.sum(1)
        out.append(torch.nn.functional.normalize(e, dim=-1))
    return torch.cat(out).numpy()


def evaluate(args):
    torch.set_grad_enabled(False)
    _, _, test = load()
    random.seed(1)
    if args.limit and args.limit < len(test):
        test = random.sample(test, args.limit)
    tok = tokenizer()
    model = CrossEncoder(ENC)
    model.load_state_dict(torch.load(os.path.join(OUT, args.ckpt)))
    model.eval()
    # sort by length for cheap padding
    order = sorted(range(len(test)), key=lambda i: len(test[i][1]) + len(test[i][2]))
    pairs = [(test[i][2], test[i][1], i) for i in order]   # (lookup text_b, stored text_a)
    score = np.zeros(len(test))
    t0 = time.time()
    for chunk, enc in batches(tok, pairs, 64):
        s = torch.sigmoid(model(**enc)).numpy()
        for p, v in zip(chunk, s):
            score[p[2]] = v
    t_ce = time.time() - t0
    print(f"cross-encoder scored {len(test)} pairs in {t_ce:.0f}s")
    if args.reuse_cos:
        z = np.load(os.path.join(OUT, "scores.npz"))
        assert (z["ids"] == np.array([x[0] for x in test])).all()
        y = np.array([x[3] for x in test], dtype=bool)
        return report(y, score, z["cos"])
    t0 = time.time()
    bi = BertModel.from_pretrained(ENC, add_pooling_layer=False).eval()
    ea = embed(bi, tok, [x[1] for x in test]); eb = embed(bi, tok, [x[2] for x in test])
    cos = (ea * eb).sum(1)
    print(f"bi-encoder cosines in {time.time() - t0:.0f}s")
    y = np.array([x[3] for x in test], dtype=bool)
    np.savez(os.path.join(OUT, "scores.npz"), ids=np.array([x[0] for x in test]), y=y, ce=score, cos=cos)
    report(y, score, cos)


def best(y, accept_fn, cuts, max_false):
    """Highest duplicate-acceptance share with false accepts / all lookups <= max_false."""
    n, d = len(y), y.sum()
    res = (0.0, 0.0, None)
    for t in cuts:
        a = accept_fn(t)
        hit, false = (a & y).sum() / d, (a & ~y).sum() / n
        if false <= max_false and hit > res[0]:
            res = (hit, false, t)
    return res


def report(y, ce, cos):
    print(f"{len(y)} held-out lookups, {y.sum()} duplicates ({y.mean():.1%})")
    cuts = np.unique(np.concatenate([np.linspace(0, 1, 1001), np.quantile(ce, np.linspace(0, 1, 2001))]))
    ccuts = np.linspace(0.5, 1.0, 501)
    for mf in (0.02, 0.01):
        h, f, t = best(y, lambda t: cos >= t, ccuts, mf)
        print(f"max false {mf:.0%}: bare cosine (own pair)       hit {h:.1%} false {f:.2%} at cos>={t}")
        h, f, t = best(y, lambda t: ce >= t, cuts, mf)
        print(f"max false {mf:.0%}: cross-encoder alone          hit {h:.1%} false {f:.2%} at ce>={t:.4f}")
        for c in (0.80, 0.85, 0.90):
            h, f, t = best(y, lambda t: (ce >= t) & (cos >= c), cuts, mf)
            print(f"max false {mf:.0%}: cos>={c:.2f} AND cross-encoder hit {h:.1%} false {f:.2%} at ce>={t:.4f}")
    for c in (0.80, 0.85, 0.90, 0.95):
        a = cos >= c
        print(f"cos>={c:.2f} gate alone: hit {(a & y).sum() / y.sum():.1%} false {(a & ~y).sum() / len(y):.2%}, passes {a.mean():.1%} of lookups")
    # ROC-AUC
    def auc(s):
        o = np.argsort(s); r = np.empty(len(s)); r[o] = np.arange(1, len(s) + 1)
        p = y.sum(); return (r[y].sum() - p * (p + 1) / 2) / (p * (len(y) - p))
    print(f"AUC cross-encoder {auc(ce):.4f}, bi-encoder cosine {auc(cos):.4f}")


def combo(args):
    """Logistic blend of logit(cross-encoder) and cosine, 2-fold CV on the held-out fold (by pair id)."""
    z = np.load(os.path.join(OUT, "scores.npz"))
    y, ce, cos, ids = z["y"], z["ce"], z["cos"], z["ids"]
    lg = np.log(np.clip(ce, 1e-6, 1 - 1e-6) / np.clip(1 - ce, 1e-6, 1))
    x = np.stack([lg, cos, lg * cos], 1); x = (x - x.mean(0)) / x.std(0)
    a = np.hstack([x, np.ones((len(x), 1))])
    conf = np.zeros(len(y))
    for k in (0, 1):
        tr, te = (ids // 2) % 2 != k, (ids // 2) % 2 == k
        w = np.zeros(a.shape[1])
        for _ in range(30):
            q = 1 / (1 + np.exp(-(a[tr] @ w)))
            g = a[tr].T @ (q - y[tr]); h = (a[tr] * (q * (1 - q))[:, None]).T @ a[tr] + 1e-3 * np.eye(len(w))
            w -= np.linalg.solve(h, g)
        conf[te] = 1 / (1 + np.exp(-(a[te] @ w)))
    cuts = np.quantile(conf, np.linspace(0, 1, 4001))
    for mf in (0.02, 0.01):
        h, f, t = best(y, lambda t: conf >= t, cuts, mf)
        print(f"max false {mf:.0%}: logistic blend (2-fold CV) hit {h:.1%} false {f:.2%}")


def latency(args):
    torch.set_grad_enabled(False)
    tok = tokenizer()
    model = CrossEncoder(ENC).eval()
    if os.path.exists(os.path.join(OUT, "model.pt")):
        model.load_state_dict(torch.load(os.path.join(OUT, "model.pt")))
    a = "How can I invest my money wisely and safely for the long term future?" * 3
    enc = tok([a], [a], truncation=True, max_length=MAXLEN, padding="max_length", return_tensors="pt")
    assert enc["input_ids"].shape[1] == MAXLEN
    for threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(threads)
        for _ in range(5):
            model(**enc)
        ts = []
        for _ in range(50):
            t0 = time.perf_counter(); model(**enc); ts.append(time.perf_counter() - t0)
        ts = np.array(ts) * 1000
        print(f"batch 1, length {MAXLEN}, {threads} thread(s): median {np.median(ts):.1f} ms, p90 {np.percentile(ts, 90):.1f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["train", "eval", "latency", "combo"])
    p.add_argument("--steps", type=int, default=470)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--offset", type=int, default=0, help="skip this many shuffled training pairs")
    p.add_argument("--init", default="", help="checkpoint under /tmp/cross-encoder to start from")
    p.add_argument("--ckpt", default="model.pt", help="checkpoint name under /tmp/cross-encoder")
    p.add_argument("--reuse-cos", action="store_true", help="eval: take cosines from scores.npz")
    a = p.parse_args()
    {"train": train, "eval": evaluate, "latency": latency, "combo": combo}[a.cmd](a)
