#!/usr/bin/env python3
"""Where the GPT-4 vs Mixtral routing signal comes from, in domain and out of domain (analysis).

    cargo run --release -- router crossval --data DATA --by-task      # writes the embeddings cache
    python3 training/two_model_signal.py DATA ~/.cache/cherrypick/embeddings/<hash>.f32

Needs numpy and scikit-learn. Reads the routing data and the MiniLM embeddings `router crossval`
cached for it (one f32 row of 384 per prompt, in file order; the newest file in that folder after a
crossval run). Every APGR below is scored within one benchmark, so a score that only tells the
benchmarks apart earns nothing there. Prints:

- in-domain 5-fold APGR of a ridge model of (GPT-4 correct - Mixtral correct), pooled and within
  each benchmark, and what knowing only each prompt's benchmark would earn pooled;
- leave-one-benchmark-out APGR of that model, and of a ridge model of the prompt's difficulty (the
  share of all labelled models that fail it, centred within each training benchmark so the model
  cannot learn the benchmarks' own levels), ridge and kNN.
"""
import argparse
import json

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"


def apgr(score, strong, weak):
    """RouteLLM's APGR: the mean performance gap recovered as the share sent to the strong model
    goes from 0 to 1, sending the highest scores first (random = 0.5)."""
    order = np.argsort(-score, kind="stable")
    n = len(score)
    quality = (weak.sum() + np.concatenate([[0.0], np.cumsum((strong - weak)[order])])) / n
    recovered = (quality - weak.mean()) / (strong.mean() - weak.mean())
    return np.trapezoid(recovered, dx=1 / n)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("embeddings")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.data)]
    emb = np.fromfile(args.embeddings, dtype="<f4").reshape(len(rows), -1)
    strong = np.array([r["quality"][STRONG] for r in rows], float)
    weak = np.array([r["quality"][WEAK] for r in rows], float)
    task = np.array([r["task"] for r in rows])
    tasks = sorted(set(task))
    models = sorted(rows[0]["quality"])
    difficulty = 1 - np.array([[r["quality"][m] for m in models] for r in rows], float).mean(1)
    gain = strong - weak

    def within(score):
        return " ".join(f"{t} {apgr(score[task == t], strong[task == t], weak[task == t]):.3f}" for t in tasks)

    def centred(target, train):
        y = target[train].copy()
        for t in set(task[train]):
            y[task[train] == t] -= y[task[train] == t].mean()
        return y

    predicted = np.zeros(len(rows))
    for train, test in KFold(5, shuffle=True, random_state=0).split(emb):
        predicted[test] = Ridge(alpha=10.0).fit(emb[train], gain[train]).predict(emb[test])
    print(f"in domain, ridge on the gain: pooled {apgr(predicted, strong, weak):.3f}; within: {within(predicted)}")
    level = np.array([gain[task == t].mean() for t in task])
    jitter = np.random.default_rng(0).random(len(rows)) * 1e-9
    print(f"in domain, only the benchmark's mean gain: pooled {apgr(level + jitter, strong, weak):.3f}")

    gain_out, ridge_out, knn_out = (np.zeros(len(rows)) for _ in range(3))
    for t in tasks:
        test, train = task == t, task != t
        gain_out[test] = Ridge(alpha=10.0).fit(emb[train], gain[train]).predict(emb[test])
        y = centred(difficulty, train)
        ridge_out[test] = Ridge(alpha=300.0).fit(emb[train], y).predict(emb[test])
        nearest = np.argpartition(-(emb[test] @ emb[train].T), 20, axis=1)[:, :20]
        knn_out[test] = y[nearest].mean(1)
    print(f"left-out benchmark, ridge on the gain: {within(gain_out)}")
    print(f"left-out benchmark, ridge on centred difficulty: {within(ridge_out)}")
    print(f"left-out benchmark, kNN (k=20) on centred difficulty: {within(knn_out)}")


if __name__ == "__main__":
    main()
