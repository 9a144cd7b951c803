"""ONNX Runtime baseline for the encoder forward pass (benches/router.rs, group "forward").

    python3 benches/ort/bench_ort.py [--model /tmp/minilm.onnx ...] [--runs 30]   # timing, JSON lines
    python3 benches/ort/bench_ort.py --check                                   # correctness only

Timing: for each batch x tokens shape (default 1x32, 1x128, 1x512, 8x32, 32x32) it feeds fixed
token ids ([CLS]=101, filler "the"=1996, [SEP]=102; no padding, attention mask all ones), runs
--warmup untimed calls then --runs timed ones, and prints one JSON line per shape on stdout:
{"batch": B, "tokens": T, "median_ms": M, ...}. Session: intra_op_num_threads=--threads (2),
inter_op_num_threads=1, sequential execution, ORT_ENABLE_ALL, CPU execution provider.

--check: embeds the texts of tests/fixtures/minilm_reference.json (tokenizer.json via the
`tokenizers` package, truncated to the fixture's max_tokens), mean-pools over the attention mask,
L2-normalises and asserts cosine >= 0.999 against the reference vectors; once one text at a time
(no padding) and once as a single padded batch (exercises the mask).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL_DIR = os.path.expanduser("~/.cache/cherrypick/models/all-MiniLM-L6-v2")
DEFAULT_REFERENCE = os.path.join(REPO, "tests", "fixtures", "minilm_reference.json")
DEFAULT_SHAPES = "1x32,1x128,1x512,8x32,32x32"
CLS, SEP, FILLER = 101, 102, 1996  # 1996 = "the", the token benches/router.rs uses


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # hide shape-merge warnings from the optimiser
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def feeds(sess, ids, mask):
    """Inputs in the dtypes the model declares (the fused model takes an int32 mask)."""
    out = {}
    for inp in sess.get_inputs():
        dtype = np.int32 if inp.type == "tensor(int32)" else np.int64
        if inp.name == "input_ids":
            out[inp.name] = np.ascontiguousarray(ids, dtype=dtype)
        elif inp.name == "attention_mask":
            out[inp.name] = np.ascontiguousarray(mask, dtype=dtype)
        elif inp.name == "token_type_ids":
            out[inp.name] = np.zeros_like(ids, dtype=dtype)
        else:
            sys.exit(f"unexpected model input {inp.name}")
    return out


def fixed_ids(batch, tokens):
    row = np.full(tokens, FILLER, dtype=np.int64)
    row[0], row[-1] = CLS, SEP
    return np.tile(row, (batch, 1))


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        b, t = item.lower().split("x")
        shapes.append((int(b), int(t)))
    return shapes


def bench(sess, shapes, runs, warmup, model_name):
    for batch, tokens in shapes:
        ids = fixed_ids(batch, tokens)
        inputs = feeds(sess, ids, np.ones_like(ids))
        for _ in range(warmup):
            sess.run(None, inputs)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            sess.run(None, inputs)
            times.append((time.perf_counter() - start) * 1e3)
        print(json.dumps({
            "batch": batch,
            "tokens": tokens,
            "median_ms": round(statistics.median(times), 4),
            "min_ms": round(min(times), 4),
            "runs": runs,
            "model": model_name,
        }), flush=True)


def embed(sess, ids, mask):
    hidden = sess.run(["last_hidden_state"], feeds(sess, ids, mask))[0]  # (B, S, H)
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def check(sess, model_dir, reference_path):
    from tokenizers import Tokenizer

    ref = json.load(open(reference_path))
    texts, expected = ref["texts"], np.asarray(ref["embeddings"], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=ref["max_tokens"])
    encodings = tok.encode_batch(texts)

    single = []
    for enc in encodings:
        ids = np.asarray([enc.ids], dtype=np.int64)
        single.append(embed(sess, ids, np.ones_like(ids))[0])
    single = np.stack(single)

    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = 1
    padded = embed(sess, ids, mask)

    ok = True
    for name, got in (("one at a time", single), ("padded batch", padded)):
        cosines = (got * expected).sum(axis=1)
        print(f"{name}: cosines " + " ".join(f"{c:.7f}" for c in cosines)
              + f"  (min {cosines.min():.7f}, max |diff| {np.abs(got - expected).max():.2e})")
        ok &= bool((cosines >= 0.999).all())
    for text, enc in zip(texts, encodings):
        print(f"  {len(enc.ids):4d} tokens  {text[:60]!r}")
    if not ok:
        sys.exit("CHECK FAILED: some cosine < 0.999")
    print("check passed: all cosines >= 0.999")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["/tmp/minilm.onnx"],
                        help="ONNX file(s) from build_minilm_onnx.py, run one after the other (default /tmp/minilm.onnx)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per shape (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per shape first (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="intra_op_num_threads (default 2)")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"batch x tokens list (default {DEFAULT_SHAPES})")
    parser.add_argument("--check", action="store_true", help="verify against the reference embeddings instead of timing")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR, help="folder with tokenizer.json (for --check)")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE, help="reference embeddings JSON (for --check)")
    args = parser.parse_args()

    for path in args.model:
        sess = session(path, args.threads)
        print(f"onnxruntime {ort.__version__}, model {path}, intra_op_num_threads={args.threads}", file=sys.stderr, flush=True)
        if args.check:
            check(sess, args.model_dir, args.reference)
        else:
            bench(sess, parse_shapes(args.shapes), args.runs, args.warmup, os.path.basename(path))


if __name__ == "__main__":
    main()
