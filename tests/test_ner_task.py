"""The NER task end to end on the tiny fixture corpus: train → export → evaluate → load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from app import model_store
from app.tasks.ner.pipeline import NERPipeline
from tests.conftest import FIXTURES
from training import publishing
from training.__main__ import main
from training.data.ner import TaggedSentence, read_bio, read_cluener, read_weibo, relabel
from training.data.tags import Span
from training.tasks.ner import backbone as ner_backbone
from training.tasks.ner import config as ner_config
from training.tasks.ner import head as ner_head

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): train→export smoke runs

TEXTS = ["李鹏在北京会见了日本客人。", "Ｈｅｌｌｏ😀张三", "x", "今天天气很好，我们去公园散步。" * 3]


def test_training_writes_checkpoint_logs_and_timing(tiny_ner_run):
    assert (tiny_ner_run / "best.weights.h5").is_file()
    assert any((tiny_ner_run / "logs").rglob("events.out.tfevents*"))
    assert json.loads((tiny_ner_run / "timing.json").read_text())["epochs"] == 2
    config = ner_config.Config.of_run(tiny_ner_run)
    assert config.tags == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_training_resumes_from_its_config(tiny_ner_run, capsys):
    """A second run with more epochs reuses the saved vocabulary and goes on from the last epoch."""
    before = (tiny_ner_run / "config.json").read_text()
    capsys.readouterr()
    main([
        "ner", "train", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(tiny_ner_run),
        "--epochs", "3", "--held-out", "4", "--quiet", "--min-char-count", "5",
    ])
    assert (tiny_ner_run / "config.json").read_text() == before
    state = json.loads((tiny_ner_run / "timing.json").read_text())
    assert state["epochs"] == 3 and state["best"] is not None
    assert len((tiny_ner_run / "command.txt").read_text().splitlines()) == 2
    printed = capsys.readouterr().out
    assert "Epoch 3/3" in printed and "Epoch 1/3" not in printed  # extended, not restarted


TINY_HYPERPARAMETERS = [
    "--held-out", "4", "--quiet", "--hidden", "8", "--char-dim", "8", "--bigram-dim", "4",
    "--min-char-count", "1", "--min-bigram-count", "1", "--lexicon-max-word-length", "3",
]


def test_warm_start_continues_an_exported_version(tiny_ner_run, tmp_path, capsys):
    """Training from an exported version starts at its weights (same held-out F1), keeps them as
    best until an epoch beats them, and the next export's manifest says where they came from."""
    export = ["ner", "export", "--data-dir", str(FIXTURES / "ner"), "--model-root", str(tmp_path / "models")]
    main([*export, "--run-dir", str(tiny_ner_run)])
    source = model_store.resolve_version(tmp_path / "models" / "ner")
    source_best = json.loads((tiny_ner_run / "timing.json").read_text())["best"]  # of the exported weights
    run_dir = tmp_path / "warm"
    capsys.readouterr()
    main([
        "ner", "train", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(run_dir), "--epochs", "1",
        "--init-from", str(source), *TINY_HYPERPARAMETERS,
    ])
    assert f"held-out F1 {source_best:.4f}" in capsys.readouterr().out
    assert json.loads((run_dir / "timing.json").read_text())["best"] >= source_best

    main([*export, "--run-dir", str(run_dir)])
    manifest = model_store.read_manifest(model_store.resolve_version(tmp_path / "models" / "ner"))
    assert manifest["version"] == 2
    assert manifest["warm_started_from"]["path"] == str(source)
    source_commands = model_store.read_manifest(source)["training_commands"]
    assert manifest["training_commands"][: len(source_commands)] == source_commands
    assert "--init-from" in manifest["training_commands"][-1]


def test_warm_start_refuses_a_different_architecture(tiny_ner_store, tmp_path):
    with pytest.raises(ValueError, match="hyper-parameters or vocabulary"):
        main([
            "ner", "train", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(tmp_path / "other"), "--epochs", "1",
            "--init-from", str(tiny_ner_store / "ner" / "1"), *TINY_HYPERPARAMETERS, "--hidden", "16",
        ])


def test_export_layout_and_manifest(tiny_ner_store):
    version_dir = model_store.resolve_version(tiny_ner_store / "ner")
    assert version_dir.name == "1"
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    manifest = model_store.read_manifest(version_dir)
    assert manifest["task"] == "ner" and manifest["version"] == 1
    assert set(manifest["metrics"]) == {"msra_test", "peoples_daily_test", "weibo_test", "msra_test_traditional"}
    assert manifest["training_commands"][0].startswith("python -m training ner train")
    assert manifest["params"] > 0 and manifest["created"]
    assert manifest["calibration"]["temperature"] > 0 and manifest["calibration"]["fitted_on"]
    assert not list(tiny_ner_store.joinpath("ner").glob(".staging-*"))


def test_the_crf_temperature_is_fitted_on_held_out_sentences_and_keeps_the_path(tiny_ner_run):
    from training.tasks.ner.calibrate import TEMPERATURE_BOUNDS, fit_temperature

    model, config = ner_backbone.load_tagger(tiny_ner_run)
    sentences = read_bio(FIXTURES / "ner" / "msra" / "test.txt")
    calibration = fit_temperature(model, config.tags, sentences, "the fixture's test sentences")
    assert TEMPERATURE_BOUNDS[0] <= calibration["temperature"] <= TEMPERATURE_BOUNDS[1]
    assert calibration["fitted_on"].startswith(("the fixture's", "nothing"))
    codepoints = tf.constant([[ord(c) for c in sentences[0].text]])
    paths = [ner_head.make_tagger(model, config.tags, t)(codepoints)["path"].numpy() for t in (1.0, 3.0)]
    np.testing.assert_array_equal(*paths)


def served_spans(version_dir, texts=TEXTS):
    """The entity spans the service's pipeline reads off an exported tagger."""
    pipeline = NERPipeline(tf.saved_model.load(str(version_dir)).signatures["serving_default"])
    return [[Span(e.type, e.start, e.end) for e in result.entities] for result in pipeline.answer_many(texts)]


def test_exported_model_matches_in_process_model(tiny_ner_run, tiny_ner_store):
    config = ner_config.Config.of_run(tiny_ner_run)
    model = ner_backbone.build_model(config)
    model.load_weights(tiny_ner_run / "best.weights.h5")
    in_process = ner_head.predict_spans(ner_head.in_process_predictor(model, config.tags), TEXTS)
    exported = served_spans(model_store.resolve_version(tiny_ner_store / "ner"))
    assert in_process == exported


def test_serving_signature_takes_raw_strings(tiny_ner_store):
    serve = tf.saved_model.load(str(tiny_ner_store / "ner" / "1")).signatures["serving_default"]
    out = serve(text=tf.constant([t.encode() for t in TEXTS]))
    lengths = out["lengths"].numpy()
    assert lengths.tolist() == [len(t) for t in TEXTS]
    tags = out["tags"].numpy()
    for row, length in zip(tags, lengths):
        assert all(tag != b"" for tag in row[:length]) and all(tag == b"" for tag in row[length:])
    assert np.all((out["confidence"].numpy() > 0) & (out["confidence"].numpy() <= 1 + 1e-6))


def test_the_signature_gives_the_entities_of_the_tags_with_probabilities(tiny_ner_store):
    """The graph's entities are the spans the tags spell (the service reads them from the graph)."""
    from training.data.tags import spans_from_tag_batch

    serve = tf.saved_model.load(str(tiny_ner_store / "ner" / "1")).signatures["serving_default"]
    out = {k: v.numpy() for k, v in serve(text=tf.constant([t.encode() for t in TEXTS])).items()}
    for row, spans in enumerate(spans_from_tag_batch(out["tags"], out["lengths"])):
        kept = out["entity_starts"][row] >= 0
        graph = list(zip(out["entity_starts"][row][kept], out["entity_ends"][row][kept], out["entity_types"][row][kept]))
        assert [(int(s), int(e), t.decode()) for s, e, t in graph] == [(s.start, s.end, s.label) for s in spans]
        probabilities = out["entity_probabilities"][row][kept]
        assert np.all((probabilities > 0) & (probabilities <= 1 + 1e-6))
        # The best path is one of the paths holding each of its entities: its probability
        # bounds theirs from below.
        assert np.all(probabilities >= out["confidence"][row] - 1e-5)


def test_evaluate_prints_json_last_line(tiny_ner_store, capsys, tmp_path):
    plot = tmp_path / "reliability.png"
    main([
        "ner", "evaluate", "--data-dir", str(FIXTURES / "ner"), "--model-root", str(tiny_ner_store),
        "--reliability-plot", str(plot),
    ])
    printed = capsys.readouterr().out
    printed_json = json.loads(printed.strip().splitlines()[-1])
    assert printed_json["task"] == "ner" and set(printed_json["models"]) == {"ner"}  # every NER model of the store
    result = printed_json["models"]["ner"]
    assert result["f1"] == result["msra_test"]["f1"]
    # Every test split labelled PER/LOC/ORG that the data folder holds: Weibo's too (GPE read as LOC).
    assert {"msra_test", "peoples_daily_test", "weibo_test", "msra_test_traditional"} <= set(result)
    assert {"precision", "recall", "f1", "per_type"} <= set(result["peoples_daily_test"])
    calibration = result["msra_test"]["entity_calibration"]
    assert 0 <= calibration["ece"] <= 1 and sum(b["count"] for b in calibration["bins"]) == calibration["n"]
    assert "ECE" in printed
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_second_model_of_the_task_is_exported_beside_the_first_and_evaluated_with_it(
    tiny_ner_run, tiny_ner_store, tmp_path, capsys
):
    store = tmp_path / "models"
    shutil.copytree(tiny_ner_store, store)
    data = ["--data-dir", str(FIXTURES / "ner"), "--model-root", str(store)]
    main(["ner", "export", "--run-dir", str(tiny_ner_run), "--model", "ner-fine", *data])
    assert model_store.read_manifest(store / "ner-fine" / "1")["task"] == "ner"
    capsys.readouterr()
    main(["ner", "evaluate", *data])
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]) == {"ner", "ner-fine"}
    main(["ner", "evaluate", "--model", "ner-fine", *data])
    assert set(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]) == {"ner-fine"}


def test_reliability_table_and_expected_calibration_error():
    from training.metrics import reliability

    table = reliability([0.95, 0.95, 0.15, 0.15, 0.55], [True, False, False, False, True])
    assert [(b["range"], b["count"], b["accuracy"]) for b in table["bins"]] == [
        ([0.1, 0.2], 2, 0.0), ([0.5, 0.6], 1, 1.0), ([0.9, 1.0], 2, 0.5),
    ]
    assert table["ece"] == pytest.approx((2 * 0.15 + 1 * 0.45 + 2 * 0.45) / 5, abs=1e-4)
    assert reliability([1.0], [True])["bins"][0]["range"] == [0.9, 1.0]  # 1.0 falls in the top bin


def test_export_of_a_second_version_can_prune_the_first(tiny_ner_run, tmp_path):
    args = ["ner", "export", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(tiny_ner_run), "--model-root", str(tmp_path)]
    main(args)
    main(args + ["--prune"])
    assert model_store.versions(tmp_path / "ner") == [2]


def test_bioes_tagger_with_weight_averaging_and_two_layers_still_outputs_bio(tmp_path):
    """``--tag-scheme BIOES`` changes what the CRF predicts, not what the model returns."""
    run_dir, root = tmp_path / "run", tmp_path / "models"
    data = ["--data-dir", str(FIXTURES / "ner")]
    main(["ner", "train", *data, "--run-dir", str(run_dir), "--epochs", "1", "--tag-scheme", "BIOES", "--ema", "0.9",
          "--encoder-layers", "2", *TINY_HYPERPARAMETERS])
    config = ner_config.Config.of_run(run_dir)
    assert {"E-PER", "S-PER"} <= set(config.tags)
    assert ner_backbone.build_model(config).get_layer("encoder_2")
    main(["ner", "export", *data, "--run-dir", str(run_dir), "--model-root", str(root)])
    version_dir = model_store.resolve_version(root / "ner")
    assert model_store.read_manifest(version_dir)["tags"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    tags = set(serve(text=tf.constant([t.encode() for t in TEXTS]))["tags"].numpy().ravel().tolist())
    assert tags <= {b"", b"O", b"B-LOC", b"I-LOC", b"B-ORG", b"I-ORG", b"B-PER", b"I-PER"}


def test_an_ensemble_with_int8_embeddings_exports_as_one_tagger(tiny_ner_run, tmp_path):
    """Two runs exported as one SavedModel (mean emissions and CRF scores, one Viterbi), int8
    embedding tables: the exported model answers like the same ensemble built in process."""
    data = ["--data-dir", str(FIXTURES / "ner")]
    other = tmp_path / "other"
    main(["ner", "train", *data, "--run-dir", str(other), "--epochs", "1", "--seed", "5", *TINY_HYPERPARAMETERS])
    main(["ner", "export", *data, "--run-dir", str(tiny_ner_run), "--ensemble", str(other), "--int8-embeddings",
          "--model-root", str(tmp_path / "models")])
    version_dir = model_store.resolve_version(tmp_path / "models" / "ner")
    manifest = model_store.read_manifest(version_dir)
    assert manifest["int8_embeddings"] is True
    assert [m["run_dir"] for m in manifest["ensemble"]] == [str(tiny_ner_run), str(other)]
    assert all(m["training_commands"] for m in manifest["ensemble"])

    shared = ner_backbone.lexicon_layer(ner_config.Config.of_run(tiny_ner_run))
    members = [ner_backbone.load_tagger(d, f"member_{i}", shared)[0] for i, d in enumerate([tiny_ner_run, other])]
    ensemble = ner_backbone.build_ensemble(members)
    publishing.quantize_embeddings(ensemble)
    tags = ner_config.Config.of_run(tiny_ner_run).tags
    in_process = ner_head.predict_spans(ner_head.in_process_predictor(ensemble, tags), TEXTS)
    assert served_spans(version_dir) == in_process
    crf = ensemble.get_layer("crf")
    expected = np.mean([m.get_layer("crf").transitions.numpy() for m in members], axis=0)
    np.testing.assert_allclose(crf.transitions.numpy(), expected, rtol=1e-6)


def test_float16_weights_shrink_the_lstms_and_keep_the_answers(tiny_ner_run, tiny_ner_store, tmp_path):
    """``--float16-weights`` stores the LSTM and dense kernels as float16 (computed in float32); the
    CRF's potentials stay float32 (decoding reads them outside the layer's call)."""
    root = tmp_path / "models"
    main(["ner", "export", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(tiny_ner_run), "--model-root", str(root),
          "--int8-embeddings", "--float16-weights"])
    small_dir, float_dir = model_store.resolve_version(root / "ner"), model_store.resolve_version(tiny_ner_store / "ner")
    assert model_store.read_manifest(small_dir)["float16_weights"] is True
    dtypes = {v.name: v.dtype for v in tf.saved_model.load(str(small_dir))._all_variables}
    assert {d for n, d in dtypes.items() if "lstm_cell/kernel" in n} == {tf.float16}
    assert {d for n, d in dtypes.items() if "transitions" in n} == {tf.float32}

    def variables_size(version_dir):
        return sum(f.stat().st_size for f in (version_dir / "variables").iterdir())

    assert variables_size(small_dir) < variables_size(float_dir)
    assert served_spans(small_dir) == served_spans(float_dir)


def test_cluener_reader(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(
        json.dumps({"text": "浙商银行企业信贷部叶老桂博士", "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}}},
                   ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (sentence,) = read_cluener(path)
    assert [(s.label, sentence.text[s.start : s.end]) for s in sentence.spans] == [("company", "浙商银行"), ("name", "叶老桂")]


def test_weibo_reader_keeps_named_mentions_with_gpe_as_loc(tmp_path):
    # 李鹏 a name (BIOES), 上海 a GPE name, 记者 a nominal, then an emoji the corpus lost (two U+FFFD).
    (tmp_path / "seq.in").write_text("李 鹏 在 上 海 见 了 记 者 \ufffd\ufffd\n", encoding="utf-8")
    (tmp_path / "seq.out").write_text("B-PER.NAM E-PER.NAM O B-GPE.NAM E-GPE.NAM O O B-PER.NOM E-PER.NOM O\n", encoding="utf-8")
    (sentence,) = read_weibo(tmp_path)
    assert sentence.text == "李鹏在上海见了记者\ufffd"
    assert [(s.label, sentence.text[s.start : s.end]) for s in sentence.spans] == [("PER", "李鹏"), ("LOC", "上海")]


def test_a_corpus_of_several_sources_holds_out_by_source(tmp_path):
    from tests.fixtures.make_ner_fixture import write, write_weibo
    from training.tasks.ner.preprocessor import read_corpus

    write(tmp_path / "news.txt", ["[PER 李鹏]在[LOC 北京]。", "[PER 张三]来了。", "[LOC 上海]很大。", "[PER 王五]好。"])
    write_weibo(tmp_path / "posts" / "train", ["[PER.NAM 张三]好帅", "去[GPE.NAM 杭州]玩"])
    write_weibo(tmp_path / "posts" / "dev", ["[PER.NAM 李四]来了"])
    corpus = ner_config.Corpus(
        sources=(
            ner_config.Source(read_bio, "news.txt"),
            ner_config.Source(read_weibo, "posts/train", dev="posts/dev", repeat=3),
            ner_config.Source(read_weibo, "posts/dev", hold_out=False),
        ),
        test="msra_test",
        source="",
    )
    train, held_out = read_corpus(corpus, tmp_path, held_out=1, seed=13)
    assert set(held_out) == {"news.txt", "posts/dev"}
    assert len(held_out["news.txt"]) == 1 and [s.text for s in held_out["posts/dev"]] == ["李四来了"]
    assert held_out["news.txt"][0] not in train
    assert len(train) == 3 + 3 * 2 + 1  # the news not held out, the posts thrice, the unjudged source whole


def test_relabel_maps_types_and_drops_the_unmapped():
    sentence = TaggedSentence("腾讯的马化腾玩王者荣耀", ("B-company", "I-company", "O", "B-name", "I-name", "I-name", "O",
                                                  "B-game", "I-game", "I-game", "I-game"))
    (relabelled,) = relabel([sentence], {"company": "ORG", "name": "PER"})
    assert [(s.label, s.start, s.end) for s in relabelled.spans] == [("ORG", 0, 2), ("PER", 3, 6)]


def test_bio_reader_rejects_malformed_lines(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("北 B-LOC\n京\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_bio(path)


def test_warm_start_from_an_int8_export_dequantises_the_embeddings(tiny_ner_run, tmp_path, capsys):
    """An int8 export's embeddings are int8 values with a scale per row; copied raw they would
    give a different model. Dequantised, the warm-started model scores the exported one's F1
    (up to int8 rounding)."""
    main(["ner", "export", "--data-dir", str(FIXTURES / "ner"), "--model-root", str(tmp_path / "models"),
          "--run-dir", str(tiny_ner_run), "--int8-embeddings"])
    source = model_store.resolve_version(tmp_path / "models" / "ner")
    source_best = json.loads((tiny_ner_run / "timing.json").read_text())["best"]
    capsys.readouterr()
    main([
        "ner", "train", "--data-dir", str(FIXTURES / "ner"), "--run-dir", str(tmp_path / "warm"), "--epochs", "1",
        "--init-from", str(source), *TINY_HYPERPARAMETERS,
    ])
    baseline = float(capsys.readouterr().out.split("held-out F1 ")[1].split()[0])
    assert baseline == pytest.approx(source_best, abs=0.05)
