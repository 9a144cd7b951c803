"""Build an ONNX graph of the all-MiniLM-L6-v2 BERT encoder straight from its safetensors weights.

    python3 benches/ort/build_minilm_onnx.py [OUT.onnx] [--model-dir DIR]

No torch, no export: the graph is written node by node with onnx.helper (opset 17) in the same
shape a PyTorch export of Hugging Face's BertModel has, so onnxruntime's graph optimiser
(ORT_ENABLE_ALL) can recognise its usual patterns (LayerNorm, Gelu, Attention, SkipLayerNorm...).

Inputs:  input_ids      int64 (batch, len)
         attention_mask int64 (batch, len)  1 = token, 0 = padding (turned into an additive mask)
Output:  last_hidden_state float32 (batch, len, hidden)

Token type ids are always 0 (row 0 of the token type table is folded into a constant).
Weights stay float32 and are stored as initializers.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

DEFAULT_MODEL_DIR = os.path.expanduser("~/.cache/cherrypick/models/all-MiniLM-L6-v2")
DEFAULT_OUT = "/tmp/minilm.onnx"


class Graph:
    def __init__(self):
        self.nodes = []
        self.inits = []
        self._n = 0

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, hint, array):
        return self.init(self.name(hint), np.asarray(array))

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out + "_node", **attrs))
        return out


def build(model_dir):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    # Hugging Face checkpoints are stored either bare ("embeddings....") or under "bert.".
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

    def w(key):
        return weights[prefix + key].astype(np.float32)

    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    layers = config["num_hidden_layers"]
    eps = float(config.get("layer_norm_eps", 1e-12))
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        sys.exit(f"hidden_act {act!r} not supported (exact erf GELU only)")
    if config.get("position_embedding_type", "absolute") != "absolute":
        sys.exit("only absolute position embeddings are supported")

    g = Graph()

    # ---- embeddings -----------------------------------------------------------------------
    word = g.init("embeddings.word_embeddings.weight", w("embeddings.word_embeddings.weight"))
    pos_table = g.init("embeddings.position_embeddings.weight", w("embeddings.position_embeddings.weight"))
    type0 = g.init("embeddings.token_type_row0", w("embeddings.token_type_embeddings.weight")[0])

    x = g.op("Gather", [word, "input_ids"], "word_emb", axis=0)  # (B, S, H)
    # Position rows 0..S: a Slice of the table up to S = shape(input_ids)[1]. (Range + Gather means
    # the same, but onnxruntime 1.32's ORT_ENABLE_ALL rewrites that into a Slice with scalar starts
    # that then fails at run time: "Starts must be a 1-D array".)
    seq = g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)  # (1,) int64
    pos = g.op(
        "Slice",
        [pos_table, g.const("zero", np.array([0], dtype=np.int64)), seq, g.const("axis0", np.array([0], dtype=np.int64))],
        "pos_emb",
    )  # (S, H)
    x = g.op("Add", [x, pos], "emb_add_pos")
    x = g.op("Add", [x, type0], "emb_add_type")
    x = g.op(
        "LayerNormalization",
        [x, g.init("embeddings.LayerNorm.weight", w("embeddings.LayerNorm.weight")),
         g.init("embeddings.LayerNorm.bias", w("embeddings.LayerNorm.bias"))],
        "emb_ln", axis=-1, epsilon=eps,
    )

    # ---- additive attention mask: (1 - mask) * -10000, shape (B, 1, 1, S) --------------------
    # Two single-axis Unsqueezes, as a PyTorch export writes them (the pattern ORT's fusers look for).
    m = g.op("Unsqueeze", ["attention_mask", g.const("axes", np.array([1], dtype=np.int64))], "mask3d")
    m = g.op("Unsqueeze", [m, g.const("axes", np.array([2], dtype=np.int64))], "mask4d")
    m = g.op("Cast", [m], "mask_f", to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const("one_f", np.array(1.0, dtype=np.float32)), m], "mask_inv")
    mask_add = g.op("Mul", [m, g.const("neg", np.array(-10000.0, dtype=np.float32))], "mask_add")

    split_heads = g.const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
    scale = g.const("sqrt_head_dim", np.array(math.sqrt(head_dim), dtype=np.float32))

    def dense(inp, key, hint):
        # torch Linear stores (out, in); ONNX MatMul wants (in, out).
        wt = g.init(f"{key}.weight_t", w(f"{key}.weight").T)
        b = g.init(f"{key}.bias", w(f"{key}.bias"))
        return g.op("Add", [g.op("MatMul", [inp, wt], hint + "_mm"), b], hint)

    def layer_norm(inp, key, hint):
        return g.op(
            "LayerNormalization",
            [inp, g.init(f"{key}.weight", w(f"{key}.weight")), g.init(f"{key}.bias", w(f"{key}.bias"))],
            hint, axis=-1, epsilon=eps,
        )

    # ---- encoder layers -------------------------------------------------------------------
    for i in range(layers):
        p = f"encoder.layer.{i}"
        q = dense(x, f"{p}.attention.self.query", f"l{i}_q")
        k = dense(x, f"{p}.attention.self.key", f"l{i}_k")
        v = dense(x, f"{p}.attention.self.value", f"l{i}_v")
        q = g.op("Transpose", [g.op("Reshape", [q, split_heads], f"l{i}_q_r")], f"l{i}_q_t", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, split_heads], f"l{i}_k_r")], f"l{i}_k_t", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, split_heads], f"l{i}_v_r")], f"l{i}_v_t", perm=[0, 2, 1, 3])
        scores = g.op("MatMul", [q, k], f"l{i}_scores")  # (B, h, S, S)
        scores = g.op("Div", [scores, scale], f"l{i}_scaled")
        scores = g.op("Add", [scores, mask_add], f"l{i}_masked")
        probs = g.op("Softmax", [scores], f"l{i}_probs", axis=-1)
        ctx = g.op("MatMul", [probs, v], f"l{i}_ctx")  # (B, h, S, d)
        ctx = g.op("Transpose", [ctx], f"l{i}_ctx_t", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_heads], f"l{i}_ctx_r")
        attn = dense(ctx, f"{p}.attention.output.dense", f"l{i}_attn_out")
        x = layer_norm(g.op("Add", [attn, x], f"l{i}_attn_res"), f"{p}.attention.output.LayerNorm", f"l{i}_attn_ln")

        h = dense(x, f"{p}.intermediate.dense", f"l{i}_inter")
        # exact GELU: x * 0.5 * (1 + erf(x / sqrt 2))
        e = g.op("Erf", [g.op("Div", [h, g.const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))], f"l{i}_gelu_div")], f"l{i}_gelu_erf")
        e = g.op("Add", [e, g.const("one_f", np.array(1.0, dtype=np.float32))], f"l{i}_gelu_add")
        h = g.op("Mul", [h, e], f"l{i}_gelu_mul")
        h = g.op("Mul", [h, g.const("half", np.array(0.5, dtype=np.float32))], f"l{i}_gelu")
        out = dense(h, f"{p}.output.dense", f"l{i}_out")
        x = layer_norm(g.op("Add", [out, x], f"l{i}_out_res"), f"{p}.output.LayerNorm", f"l{i}_out_ln")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output_node"))

    graph = helper.make_graph(
        g.nodes,
        "minilm_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "len"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "len"]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "len", hidden])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="cherrypick-bench")
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT, help=f"output .onnx path (default {DEFAULT_OUT})")
    parser.add_argument("--model-dir", default=DEFAULT_MODEL_DIR, help=f"Hugging Face model folder (default {DEFAULT_MODEL_DIR})")
    parser.add_argument(
        "--fused-out",
        metavar="PATH",
        help="also write a copy run through onnxruntime.transformers' BERT optimiser (fused Attention, "
        "SkipLayerNormalization, BiasGelu: the usual way BERT is deployed on ORT CPU)",
    )
    args = parser.parse_args()
    model = build(args.model_dir)
    onnx.save(model, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB, {len(model.graph.node)} nodes)")
    if args.fused_out:
        write_fused(args.out, args.fused_out, json.load(open(os.path.join(args.model_dir, "config.json"))))


def write_fused(plain_path, out, config):
    import logging

    from onnxruntime.transformers import optimizer

    logging.getLogger("onnxruntime.transformers.optimizer").setLevel(logging.ERROR)  # "producer not pytorch"
    # opt_level=0: only the Python pattern fusions; onnxruntime's own graph optimisations are left to
    # the session (ORT_ENABLE_ALL in bench_ort.py), as for the plain model.
    fused = optimizer.optimize_model(
        plain_path,
        model_type="bert",
        num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
        opt_level=0,
        use_gpu=False,
    )
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    if stats.get("Attention", 0) != config["num_hidden_layers"]:
        sys.exit(f"attention fusion failed: {stats}")
    fused.save_model_to_file(out)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB, fused: {stats})")


if __name__ == "__main__":
    main()
