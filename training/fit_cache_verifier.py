#!/usr/bin/env python3
"""Fits the semantic cache's verifier (src/memory/verify.rs) from `cherrypick cache eval --features`.

    cherrypick cache eval --pairs ../shared/data/cache/qqp-dev.tsv --features /tmp/features.tsv > /dev/null
    python3 training/fit_cache_verifier.py /tmp/features.tsv [--max-false 0.02]

A lookup is right when the pair is a duplicate and the nearest stored question is its own; every
other accepted lookup is a false hit. The script fits a logistic model of "right" on the verifier's
features (numpy only, L2-regularised Newton steps), reports two-fold cross-validated hit and
false-hit rates (folds by pair id, so no pair is scored by a model that saw it), and prints the
weights to paste into verify.rs, fitted on all rows.
"""
import argparse
import csv

import numpy as np


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    header, rows = rows[0], rows[1:]
    names = header[4:]
    ids = np.array([int(r[0]) for r in rows])
    duplicate = np.array([r[1] == "1" for r in rows])
    own = duplicate & np.array([r[2] == "1" for r in rows])
    identical = np.array([r[3] == "1" for r in rows])
    x = np.array([[float(v) for v in r[4:]] for r in rows], dtype=np.float64)
    return names, ids, duplicate, own, identical, x


def fit(x, y, l2=1e-3, steps=50):
    """Logistic regression by Newton's method; returns (weights, bias)."""
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        hess = (a * (p * (1 - p))[:, None]).T @ a + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], w[-1]


def rates(confidence, own, identical, duplicate, lookups, cut):
    """Hit rate on duplicates (own pair matched) and false hits over all lookups; a match on a
    stored question identical to the asked one is right, whatever the label."""
    accepted = confidence >= cut
    hits = (accepted & own).sum()
    false = (accepted & ~own & ~identical).sum()
    return hits / max(duplicate.sum(), 1), false / lookups


def operating_point(confidence, own, identical, duplicate, lookups, max_false):
    """The lowest confidence cut whose false-hit rate stays within max_false."""
    best = 1.0
    for cut in np.linspace(0.0, 1.0, 1001)[::-1]:
        if rates(confidence, own, identical, duplicate, lookups, cut)[1] > max_false:
            break
        best = cut
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("features")
    parser.add_argument("--max-false", type=float, default=0.02)
    parser.add_argument("--lookups", type=int, help="all lookups, if some had no candidate row")
    args = parser.parse_args()
    names, ids, duplicate, own, identical, x = load(args.features)
    right = own | identical
    lookups = args.lookups or len(ids)

    print(f"{len(ids)} lookups, {duplicate.sum()} duplicates, nearest is own entry for {own.sum()}, identical for {identical.sum()}")
    cosine = x[:, names.index("cosine")]
    for t in (0.80, 0.90, 0.95):
        hit, false = rates(cosine, own, identical, duplicate, lookups, t)
        print(f"bare cosine >= {t:.2f}: hit {hit:.1%}, false {false:.2%}")

    folds = ids % 2
    print(f"\ntwo-fold cross-validation, cut chosen on the training fold for <= {args.max_false:.1%} false hits:")
    for fold in (0, 1):
        train, test = folds != fold, folds == fold
        w, b = fit(x[train], right[train].astype(float))
        conf_train = 1 / (1 + np.exp(-(x[train] @ w + b)))
        cut = operating_point(conf_train, own[train], identical[train], duplicate[train], train.sum(), args.max_false)
        conf_test = 1 / (1 + np.exp(-(x[test] @ w + b)))
        hit, false = rates(conf_test, own[test], identical[test], duplicate[test], test.sum(), cut)
        print(f"  fold {fold}: cut {cut:.3f} -> held-out hit {hit:.1%}, false {false:.2%}")
        for c in (0.5, 0.6, 0.7, 0.8, 0.9):
            h, f = rates(conf_test, own[test], identical[test], duplicate[test], test.sum(), c)
            print(f"      confidence >= {c:.1f}: hit {h:.1%}, false {f:.2%}")

    w, b = fit(x, right.astype(float))
    conf = 1 / (1 + np.exp(-(x @ w + b)))
    cut = operating_point(conf, own, identical, duplicate, lookups, args.max_false)
    hit, false = rates(conf, own, identical, duplicate, lookups, cut)
    print(f"\nall rows: cut {cut:.3f}: hit {hit:.1%}, false {false:.2%}")
    print("const WEIGHTS: [f32; %d] = [%s];" % (len(w), ", ".join(f"{v:.4}" for v in w)))
    print(f"const BIAS: f32 = {b:.4};")
    for name, v in zip(names, w):
        print(f"  {name:>24}: {v:+.3f}")


if __name__ == "__main__":
    main()
