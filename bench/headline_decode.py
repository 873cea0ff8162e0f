"""Beam search inside the SavedModel vs a Python loop over the same model (the seed's way).

``python -m bench.headline_decode [--texts 20 --beam-width 4]``. Both searches use the
bundled headline model (or ``--model-dir``):

* **in-graph**: one call of the ``serving_default`` signature (``tf.while_loop``), per text;
* **Python loop**: Su Jianlin's ``gen_title`` approach — at every step call the
  ``next_token_log_probs`` signature on the whole prefix of every beam and pick the
  next beams with numpy; same restrictions, same tie-breaking, same length penalty.

Prints seconds per headline for each, the speed ratio, and how many of the texts got the
identical n-best list from both. Texts are the first abstracts of ``clge_csl/test.tsv``
when ``--data-dir`` exists, else built-in abstracts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from app import model_store  # noqa: E402
from app.tasks.headline.pipeline import call_generator  # noqa: E402
from app.tasks.headline.spec import HeadlineDecoding  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NEG_INF = -1e9
FALLBACK_TEXTS = [
    "提出了一种新的保细节的变形算法,可以使网格模型进行尽量刚性的变形,以减少变形中几何细节的扭曲.",
    "针对无线传感器网络中节点能量有限的问题,提出一种基于分簇的能量均衡路由协议,仿真结果表明该协议延长了网络寿命.",
    "为了提高图像检索的准确率,提出了一种结合颜色和纹理特征的图像检索方法,实验表明该方法优于传统方法.",
]


def python_loop_beam_search(scorer, text: str, beam_width: int, decoding: dict, tokens: dict) -> list[tuple[list[int], float]]:
    """The n-best (token ids, score) for ``text``: a numpy transcription of :func:`training.decoding.beam_search`."""
    k, end, alpha = beam_width, tokens["end"], decoding["length_penalty"]
    prefixes = np.full((k, 1), tokens["start"], np.int32)
    total = np.array([0.0] + [NEG_INF] * (k - 1), np.float32)
    finished = np.zeros(k, bool)
    lengths = np.zeros(k, np.int32)
    texts = tf.constant([text] * k)
    for t in range(decoding["max_length"]):
        log_probs = scorer(text=texts, prefix=tf.constant(prefixes, tf.int32))["log_probs"].numpy()[:, -1]  # [k, V]
        log_probs[:, tokens["never_generated"]] = NEG_INF
        if t == 0:
            log_probs[:, end] = NEG_INF
        log_probs[finished] = NEG_INF
        log_probs[finished, end] = 0.0
        vocab = log_probs.shape[1]
        candidates = (total[:, None] + log_probs).reshape(-1)
        best = np.argsort(-candidates, kind="stable")[:k]  # ties: the lower index, as tf.math.top_k
        parent, token = best // vocab, best % vocab
        total = candidates[best]
        parent_finished = finished[parent]
        lengths = lengths[parent] + ~parent_finished
        # A finished beam's decoder reads the end token again (its scores no longer change).
        prefixes = np.concatenate([prefixes[parent], np.where(parent_finished, end, token)[:, None]], axis=1)
        finished = parent_finished | (token == end)
        if finished.all():
            break
    scores = total / ((5.0 + lengths) / 6.0) ** alpha
    order = np.argsort(-scores, kind="stable")
    return [(prefixes[i, 1 : 1 + lengths[i]].tolist(), float(scores[i])) for i in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the bundled models/headline/<highest>")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "headline")
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--beam-width", type=int, default=4)
    args = parser.parse_args()

    version_dir = args.model_dir or model_store.resolve_version(REPO / "models" / "headline")
    manifest = model_store.read_manifest(version_dir)
    decoding, tokens = manifest["decoding"], manifest["tokens"]
    loaded = tf.saved_model.load(str(version_dir))
    serve, scorer = loaded.signatures["serving_default"], loaded.signatures["next_token_log_probs"]
    texts = FALLBACK_TEXTS
    test_file = args.data_dir / "clge_csl" / "test.tsv"
    if test_file.exists():
        from training.data.headline import read_clge_tsv

        texts = [pair.source for pair in read_clge_tsv(test_file)]
    texts = (texts * args.texts)[: args.texts]

    unblocked = HeadlineDecoding(**{**decoding, "block_repeated_trigrams": False})  # the Python loop does not block trigrams

    def in_graph(text: str) -> list[tuple[str, float]]:
        out = call_generator(serve, [text], args.beam_width, decoding["max_length"], unblocked)
        return [(h.decode(), float(s)) for h, s in zip(out["headlines"].numpy()[0], out["scores"].numpy()[0])]

    vocabulary = [t.decode() for t in scorer(text=tf.constant([""]), prefix=tf.constant([[tokens["start"]]]))["vocabulary"].numpy()]

    def python_loop(text: str) -> list[tuple[str, float]]:
        return [
            ("".join(vocabulary[i] for i in ids), score)
            for ids, score in python_loop_beam_search(scorer, text, args.beam_width, decoding, tokens)
        ]

    in_graph(texts[0]), python_loop(texts[0])  # trace and warm up both
    timings, outputs = {}, {}
    for name, search in (("in-graph", in_graph), ("python-loop", python_loop)):
        start = time.perf_counter()
        outputs[name] = [search(text) for text in texts]
        timings[name] = (time.perf_counter() - start) / len(texts)
    same = sum(
        [h for h, _ in a] == [h for h, _ in b] and np.allclose([s for _, s in a], [s for _, s in b], atol=1e-3)
        for a, b in zip(outputs["in-graph"], outputs["python-loop"])
    )
    print(f"model {version_dir}, beam width {args.beam_width}, max length {decoding['max_length']}, {len(texts)} texts, one at a time")
    print(f"{'search':<14}{'s / headline':>14}")
    for name, seconds in timings.items():
        print(f"{name:<14}{seconds:>14.4f}")
    print(f"speed ratio (python-loop / in-graph): {timings['python-loop'] / timings['in-graph']:.1f}x")
    print(f"identical n-best lists (texts and scores to 1e-3): {same} of {len(texts)}")
    print(json.dumps({"bench": "headline_decode", "beam_width": args.beam_width, "texts": len(texts), **{
        f"{name}_s_per_headline": round(s, 4) for name, s in timings.items()
    }, "ratio": round(timings["python-loop"] / timings["in-graph"], 2), "identical": same}))


if __name__ == "__main__":
    main()
