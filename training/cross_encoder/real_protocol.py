"""The cross-encoder verifier under the real cache protocol, on a GPU (issue 3).

    python3 training/cross_encoder/real_protocol.py --encoder DIR --data qqp-dev.tsv [--epochs 3]

crossenc.py scored each pair's own two questions (a proxy). Here, as in `cherrypick cache eval`,
every distinct `text_a` is stored and every `text_b` looks up its nearest stored question (exact
cosine of mean-pooled all-MiniLM-L6-v2, fp32). A lookup whose nearest question is word for word the
asked one counts as neither hit nor false hit; an accepted lookup is a hit when it is a duplicate
and the stored question belongs to its own pair, a false hit otherwise (share of all lookups).

The verifier is trained on what it will see: for lookups of even pair ids, (lookup, nearest stored
question) labelled 1 only when a hit would count as right, plus the even pairs themselves; even
pairs whose texts occur in the odd fold are dropped. It is evaluated on lookups of odd pair ids.
Operating points: thresholds chosen on one half of the odd fold and applied to the other, both
ways (cross-fitted), next to the optimistic choice on the whole fold.
"""
import argparse
import json
import random
import time

import numpy as np
import torch
from transformers import BertModel

import crossenc

MAXLEN = 64


def load(path):
    crossenc.DATA = path
    train_all, train_clean, test = crossenc.load()
    return train_all + test, train_clean


@torch.no_grad()
def embed(bert, tok, texts, device, bs=512):
    out = []
    for i in range(0, len(texts), bs):
        enc = tok(texts[i:i + bs], truncation=True, max_length=128, padding=True, return_tensors="pt").to(device)
        h = bert(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
    return torch.cat(out)


def nearest(rows, encoder_dir, device):
    """For each pair: (index of the nearest stored text_a, its cosine); and the stored texts with
    the pair ids that hold each."""
    tok = crossenc.tokenizer()
    bert = BertModel.from_pretrained(encoder_dir, add_pooling_layer=False).float().to(device).eval()
    stored, owners = [], {}
    for pid, a, _, _ in rows:
        if a not in owners:
            owners[a] = set()
            stored.append(a)
        owners[a].add(pid)
    s = embed(bert, tok, stored, device)
    q = embed(bert, tok, [b for _, _, b, _ in rows], device)
    cos, idx = (q @ s.T).max(dim=1)
    return stored, owners, idx.cpu().numpy(), cos.cpu().numpy()


def outcomes(rows, stored, owners, idx):
    """Per lookup: 'identical', 'right' (a hit if accepted) or 'wrong' (a false hit if accepted)."""
    kinds = []
    for (pid, _, b, y), j in zip(rows, idx):
        cand = stored[j]
        if crossenc.norm(cand) == crossenc.norm(b):
            kinds.append("identical")
        elif y == 1 and pid in owners[cand]:
            kinds.append("right")
        else:
            kinds.append("wrong")
    return kinds


def train(pairs, encoder_dir, device, epochs, bs=64, lr=3e-5):
    torch.manual_seed(0)
    random.seed(0)
    tok = crossenc.tokenizer()
    model = crossenc.CrossEncoder(encoder_dir).float().to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    total = epochs * ((len(pairs) + bs - 1) // bs)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    lossf = torch.nn.BCEWithLogitsLoss()
    started = time.time()
    for epoch in range(epochs):
        random.shuffle(pairs)
        for i in range(0, len(pairs), bs):
            chunk = pairs[i:i + bs]
            enc = tok([p[0] for p in chunk], [p[1] for p in chunk], truncation=True, max_length=MAXLEN,
                      padding=True, return_tensors="pt").to(device)
            y = torch.tensor([p[2] for p in chunk], dtype=torch.float32, device=device)
            loss = lossf(model(**enc), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        print(json.dumps({"epoch": epoch + 1, "loss": round(loss.item(), 4), "s": round(time.time() - started)}), flush=True)
    return model.eval(), tok


@torch.no_grad()
def score(model, tok, pairs, device, bs=512):
    out = []
    for i in range(0, len(pairs), bs):
        chunk = pairs[i:i + bs]
        enc = tok([p[0] for p in chunk], [p[1] for p in chunk], truncation=True, max_length=MAXLEN,
                  padding=True, return_tensors="pt").to(device)
        out.append(torch.sigmoid(model(**enc)).float().cpu())
    return torch.cat(out).numpy()


def operating_point(score, right, wrong, lookups, duplicates, max_false):
    """The lowest threshold on `score` whose false hits stay within max_false; its hit rate."""
    best = (None, 0.0, 0.0)
    for t in np.unique(np.round(score, 4))[::-1]:
        accepted = score >= t
        false = (accepted & wrong).sum() / lookups
        if false > max_false:
            break
        best = (float(t), (accepted & right).sum() / duplicates, false)
    return best


def cross_fitted(score, right, wrong, parity, max_false, scale):
    """Threshold chosen on one half, applied to the other: (hits, false hits) over both halves.
    `scale` turns a half's non-identical lookups into its lookups."""
    hits = false = 0
    for half in (0, 1):
        pick = parity == half
        t, _, _ = operating_point(score[pick], right[pick], wrong[pick], pick.sum() / scale, right[pick].sum(), max_false)
        other = ~pick
        accepted = (score[other] >= t) if t is not None else np.zeros(other.sum(), bool)
        hits += (accepted & right[other]).sum()
        false += (accepted & wrong[other]).sum()
    return hits, false


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--encoder", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    crossenc.ENC = args.encoder
    rows, train_clean = load(args.data)
    started = time.time()
    stored, owners, idx, cos = nearest(rows, args.encoder, device)
    kinds = outcomes(rows, stored, owners, idx)
    odd = np.array([pid % 2 == 1 for pid, _, _, _ in rows])
    print(json.dumps({"stored": len(stored), "lookups": len(rows), "embed_s": round(time.time() - started),
                      "own_pair_nearest_share_of_duplicates": round(
                          sum(k == "right" for k in kinds) / sum(r[3] for r in rows), 4)}), flush=True)

    test_words = {crossenc.norm(t) for pid, a, b, _ in rows if pid % 2 for t in (a, b)}
    training = [(b, stored[j], int(k == "right")) for (pid, a, b, y), j, k in zip(rows, idx, kinds)
                if pid % 2 == 0 and k != "identical"
                and crossenc.norm(b) not in test_words and crossenc.norm(stored[j]) not in test_words]
    training += [((b, a) if i % 2 else (a, b)) + (y,) for i, (_, a, b, y) in enumerate(train_clean)]
    print(json.dumps({"training_pairs": len(training), "positives": sum(t[2] for t in training)}), flush=True)
    model, tok = train(training, args.encoder, device, args.epochs)

    test = [i for i in range(len(rows)) if odd[i] and kinds[i] != "identical"]
    ce = score(model, tok, [(rows[i][2], stored[idx[i]]) for i in test], device)
    c = cos[test]
    right = np.array([kinds[i] == "right" for i in test])
    wrong = np.array([kinds[i] == "wrong" for i in test])
    lookups = int(odd.sum())  # identical lookups count as lookups, never as hits or false hits
    duplicates = sum(rows[i][3] for i in range(len(rows)) if odd[i])
    parity = np.array([(rows[i][0] // 2) % 2 for i in test])
    scale = len(test) / lookups
    for name, s in [("cosine", c), ("cross-encoder", ce), ("cos>=0.80 and ce", np.where(c >= 0.80, ce, 0)),
                    ("cos>=0.85 and ce", np.where(c >= 0.85, ce, 0)), ("cos>=0.90 and ce", np.where(c >= 0.90, ce, 0)),
                    ("ce x cos", ce * c)]:
        for max_false in (0.02, 0.01):
            t, hit, false = operating_point(s, right, wrong, lookups, duplicates, max_false)
            hits_cf, false_cf = cross_fitted(s, right, wrong, parity, max_false, scale)
            print(json.dumps({"accept_if": name, "max_false": max_false, "threshold": t,
                              "hit": round(float(hit), 4), "false": round(float(false), 4),
                              "hit_cross_fitted": round(float(hits_cf / duplicates), 4),
                              "false_cross_fitted": round(float(false_cf / lookups), 4)}), flush=True)

if __name__ == "__main__":
    main()
