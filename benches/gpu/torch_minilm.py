"""PyTorch baseline for the encoder forward pass on a GPU (compare: benches/router.rs, group
"forward", with CHERRYPICK_BENCH_DEVICE=cuda).

    python3 benches/gpu/torch_minilm.py MODEL_DIR [--runs 50] [--shapes 1x32,1x128,...] [--compile]

MODEL_DIR holds all-MiniLM-L6-v2 in Hugging Face layout (config.json, model.safetensors). The same
fixed inputs as the Rust bench ([CLS], "the" x (T-2), [SEP]; no padding), fp32, eager (and
torch.compile'd with --compile: a minute of compiling per shape), timed with CUDA synchronisation after each call. Prints one JSON line per shape and
mode: {"batch", "tokens", "mode", "median_ms", "p90_ms"}. Also prints, once, the cosine between the
mean-pooled embedding of a short text here and on the CPU, a check that the GPU computes the same.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import BertModel

CLS, SEP, FILLER = 101, 102, 1996


def fixed_ids(batch, tokens, device):
    row = torch.full((tokens,), FILLER, dtype=torch.long)
    row[0], row[-1] = CLS, SEP
    return row.repeat(batch, 1).to(device)


def timed(model, ids, runs, warmup):
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        for _ in range(warmup):
            model(input_ids=ids, attention_mask=mask)
        torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def pooled(model, ids):
    with torch.inference_mode():
        hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        return torch.nn.functional.normalize(hidden.mean(1), dim=-1).float().cpu()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--shapes", default="1x32,1x128,1x512,8x32,32x32,32x128")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    cpu = BertModel.from_pretrained(args.model_dir, torch_dtype=torch.float32, add_pooling_layer=False).eval()
    gpu = BertModel.from_pretrained(args.model_dir, torch_dtype=torch.float32, add_pooling_layer=False).eval().cuda()
    probe = fixed_ids(1, 16, "cpu")
    cosine = torch.nn.functional.cosine_similarity(pooled(cpu, probe), pooled(gpu, probe.cuda())).item()
    print(json.dumps({"check": "gpu_vs_cpu_cosine", "value": round(cosine, 7)}))

    modes = [("eager", gpu)] + ([("compiled", torch.compile(gpu))] if args.compile else [])
    for mode, model in modes:
        for shape in args.shapes.split(","):
            batch, tokens = (int(v) for v in shape.split("x"))
            median, p90 = timed(model, fixed_ids(batch, tokens, "cuda"), args.runs, args.warmup)
            print(json.dumps({"batch": batch, "tokens": tokens, "mode": mode,
                              "median_ms": round(median, 3), "p90_ms": round(p90, 3)}), flush=True)


if __name__ == "__main__":
    main()
