"""The QA task end to end on the tiny fixture corpus: train → export → evaluate → serve signature."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from app import model_store
from app.tasks.qa.answers import Answer
from app.tasks.qa.preprocessing import pad_tokens, segment
from training import runs
from training.__main__ import main
from training.data import word2vec
from training.data.qa import QAExample
from training.tasks.qa import backbone as qa_backbone
from training.tasks.qa import calibrate as qa_calibrate
from training.tasks.qa import config as qa_config
from training.tasks.qa import distillation as qa_distillation
from training.tasks.qa import grading as qa_grading
from training.tasks.qa import head as qa_head
from training.tasks.qa import preprocessor as qa_preprocessor

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): train→export smoke runs

QUESTIONS = ["中国的首都是哪里？", "What is 😀？", "長江全長多少？"]
PASSAGES = [
    ["北京是中华人民共和国的首都，也是全国的政治中心和文化中心。", "上海是中国最大的经济中心。"],
    ["Emoji 😀 and digits ２０２６ and Latin text, all in one passage that is longer than one window."],
    ["長江全長約6300公里，是中國第一長河。"],
]


def test_training_writes_checkpoint_config_and_logs(tiny_qa_run):
    assert (tiny_qa_run / "best.weights.h5").is_file()
    assert any((tiny_qa_run / "logs").rglob("events.out.tfevents*"))
    config = qa_config.Config.of_run(tiny_qa_run)
    assert config.window_chars == 24 and config.dilations == [1, 2] and config.words


def test_export_layout_and_manifest(tiny_qa_store):
    version_dir = model_store.resolve_version(tiny_qa_store / "qa")
    manifest = model_store.read_manifest(version_dir)
    assert manifest["task"] == "qa" and manifest["version"] == 1
    assert set(manifest["metrics"]) == {
        "cmrc_dev", "cmrc_dev_as_served", "cmrc_dev_calibration_half", "cmrc_dev_report_half", "handwritten",
        "webqa_max", "webqa_sum",
    }
    calibration = manifest["calibration"]  # fitted at export on dev's calibration half
    # What /v1/qa answers is graded with the version's own threshold.
    assert manifest["metrics"]["cmrc_dev_as_served"]["threshold"] == calibration["answer_threshold"]
    assert calibration["method"] == "platt" and calibration["answer_threshold"] in qa_calibrate.ANSWER_THRESHOLDS
    assert [row["threshold"] for row in calibration["thresholds"]] == list(qa_calibrate.ANSWER_THRESHOLDS)
    assert manifest["preprocessing"]["window_chars"] == 24
    assert manifest["decoding"]["nested_answer_ratio"] in qa_calibrate.NESTED_RATIOS  # fitted there too
    assert qa_config.config_of_export(version_dir).nested_answer_ratio == manifest["decoding"]["nested_answer_ratio"]
    assert manifest["training_commands"][0].startswith("python -m training qa train")


def test_exported_reader_matches_the_in_process_one(tiny_qa_run, tiny_qa_store):
    config = qa_config.Config.of_run(tiny_qa_run)
    model = qa_backbone.build_model(config)
    model.load_weights(tiny_qa_run / "best.weights.h5")
    in_process = qa_head.answer_all(qa_head.in_process_predictor(model, config), config, QUESTIONS, PASSAGES)
    exported = qa_head.answer_all(
        qa_head.saved_model_predictor(model_store.resolve_version(tiny_qa_store / "qa")),
        qa_config.config_of_export(model_store.resolve_version(tiny_qa_store / "qa")), QUESTIONS, PASSAGES,
    )
    assert [[(a.text, a.passage_index, a.start, a.end) for a in answers] for answers in exported] == [
        [(a.text, a.passage_index, a.start, a.end) for a in answers] for answers in in_process
    ]
    for answers, passages in zip(exported, PASSAGES):
        for a in answers:  # offsets point into the caller's passage
            assert passages[a.passage_index][a.start : a.end] == a.text and 0 <= a.score <= 1
            assert a.end - a.start <= config.max_answer_chars


def test_an_ensemble_of_one_run_with_itself_answers_as_the_run(qa_data, tiny_qa_run, tiny_qa_store, tmp_path, capsys):
    root = tmp_path / "models"
    main([
        "qa", "export", "--data-dir", str(qa_data), "--run-dir", str(tiny_qa_run), "--ensemble", str(tiny_qa_run),
        "--model-root", str(root),
    ])
    ensemble_dir = model_store.resolve_version(root / "qa")
    assert [m["run_dir"] for m in model_store.read_manifest(ensemble_dir)["ensemble"]] == [str(tiny_qa_run)] * 2
    single_dir = model_store.resolve_version(tiny_qa_store / "qa")
    config = qa_config.config_of_export(single_dir)
    single = qa_head.answer_all(qa_head.saved_model_predictor(single_dir), config, QUESTIONS, PASSAGES)
    ensemble = qa_head.answer_all(qa_head.saved_model_predictor(ensemble_dir), config, QUESTIONS, PASSAGES)
    assert [[(a.text, a.start) for a in answers] for answers in ensemble] == [
        [(a.text, a.start) for a in answers] for answers in single
    ]
    assert np.allclose([a.score for answers in ensemble for a in answers], [a.score for answers in single for a in answers], atol=1e-5)
    capsys.readouterr()
    main(["qa", "evaluate", "--data-dir", str(qa_data), "--model-root", str(root), "--selection"])
    exported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(exported["cmrc_trial"]) == {"f1", "em", "short_f1"}
    trial, half = exported["cmrc_trial"], exported["cmrc_dev_calibration_half"]
    assert exported["mean_f1"] == pytest.approx((trial["f1"] + trial["short_f1"] + half["f1"]) / 3, abs=0.01)
    assert exported["example"] and {"answer", "score"} <= set(exported["example"][0])
    # The same choice figures for runs not yet exported, averaged in-process.
    main(["qa", "evaluate", "--data-dir", str(qa_data), "--selection", "--runs", str(tiny_qa_run), str(tiny_qa_run)])
    in_process = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert in_process["runs"] == [str(tiny_qa_run)] * 2
    assert {k: in_process[k] for k in ("cmrc_trial", "cmrc_dev_calibration_half", "mean_f1")} == {
        k: exported[k] for k in ("cmrc_trial", "cmrc_dev_calibration_half", "mean_f1")
    }
    with pytest.raises(ValueError, match="--selection"):
        main(["qa", "evaluate", "--data-dir", str(qa_data), "--runs", str(tiny_qa_run)])


@pytest.mark.parametrize("command", ["export", "evaluate", "distillation teachers"])
def test_runs_read_with_different_windows_are_not_averaged(qa_data, tiny_qa_run, tmp_path, command):
    other = tmp_path / "other_run"
    shutil.copytree(tiny_qa_run, other)
    config = qa_config.Config.of_run(other)
    config.window_chars += 16
    config.save(other / "config.json")
    runs = [str(tiny_qa_run), str(other)]
    with pytest.raises(ValueError, match="must share window_chars"):
        if command == "export":
            main(["qa", "export", "--data-dir", str(qa_data), "--run-dir", runs[0], "--ensemble", runs[1], "--model-root", str(tmp_path / "m")])
        elif command == "evaluate":
            main(["qa", "evaluate", "--data-dir", str(qa_data), "--selection", "--runs", *runs])
        else:  # what train --teacher loads its teachers with
            qa_backbone.averaged_reader([Path(r) for r in runs], "teacher")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("options", [["--int8-embeddings"], ["--int8-embeddings", "--float16-weights"]])
def test_compressed_exports_shrink_and_answer_alike(qa_data, tiny_qa_run, tiny_qa_store, tmp_path, options):
    root = tmp_path / "models"
    main(["qa", "export", "--data-dir", str(qa_data), "--run-dir", str(tiny_qa_run), *options, "--model-root", str(root)])
    small_dir = model_store.resolve_version(root / "qa")
    float_dir = model_store.resolve_version(tiny_qa_store / "qa")
    manifest = model_store.read_manifest(small_dir)
    assert (manifest["int8_embeddings"], manifest["float16_weights"]) == (True, "--float16-weights" in options)
    kernels = {v.name: v.dtype for v in tf.saved_model.load(str(small_dir))._all_variables if "conv/kernel" in v.name}
    assert kernels and set(kernels.values()) == {tf.float16 if "--float16-weights" in options else tf.float32}

    def variables_size(version_dir):
        return sum(f.stat().st_size for f in (version_dir / "variables").iterdir())

    assert variables_size(small_dir) < variables_size(float_dir)

    def answers_of(version_dir):
        predict = qa_head.saved_model_predictor(version_dir)
        return qa_head.answer_all(predict, qa_config.config_of_export(version_dir), QUESTIONS, PASSAGES)

    small, full = answers_of(small_dir), answers_of(float_dir)
    for found, passages in zip(small, PASSAGES):
        assert all(passages[a.passage_index][a.start : a.end] == a.text for a in found)
    # Rounding moves the scores a little, not the ranking of clearly separated spans.
    for small_answers, full_answers in zip(small, full):
        assert abs(small_answers[0].score - full_answers[0].score) < 0.05


def test_serving_signature_takes_jieba_tokens(tiny_qa_store):
    serve = tf.saved_model.load(str(tiny_qa_store / "qa" / "1")).signatures["serving_default"]
    passages = ["北京是首都", "", "😀" * 3]
    out = serve(
        question_tokens=tf.constant(pad_tokens([segment("首都是哪里")] * 3)),
        passage_tokens=tf.constant(pad_tokens([segment(p) for p in passages])),
    )
    start, end, score = out["start"].numpy(), out["end"].numpy(), out["score"].numpy()
    assert start.shape == end.shape == score.shape and start.shape[0] == 3
    assert np.all(np.diff(score, axis=1) <= 0)  # best first
    valid = score >= 0
    assert np.all(end[valid] > start[valid]) and np.all(end[valid] <= 5)
    assert not valid[1].any()  # an empty passage has no span


def test_warm_start_from_an_export_keeps_its_score_as_the_baseline(qa_data, tiny_qa_run, tiny_qa_store, tmp_path, capsys):
    run_dir = tmp_path / "warm"
    run_dir.mkdir()
    shutil.copy(tiny_qa_run / "config.json", run_dir)  # the source's vocabularies
    source_best = json.loads((tiny_qa_run / "timing.json").read_text())["best"]
    capsys.readouterr()
    main([
        "qa", "train", "--data-dir", str(qa_data), "--run-dir", str(run_dir), "--epochs", "1", "--quiet",
        "--batch-size", "8", "--init-from", str(tiny_qa_store / "qa" / "1"), "--crop-rate", "1", "--crop-negative-rate", "0",
    ])
    out = capsys.readouterr().out
    assert f"held-out F1 {source_best:.4f}" in out and "val_short_f1" in out
    assert json.loads((run_dir / "timing.json").read_text())["best"] >= source_best
    assert (run_dir / runs.WARM_START).is_file()


def test_distillation_targets_mix_the_answer_with_the_teacher():
    """With a teacher the pointer targets are ``(1 - w)·one-hot + w·teacher``: still a distribution
    over the window's positions and the null slot, -1 on padding."""
    context = "北京是中国的首都。上海在东边。"
    examples = [QAExample("q", "首都是哪里？", context, (("北京", 0),))]
    config = qa_config.Config(window_chars=64, window_stride=32)
    rows = qa_preprocessor.training_windows(examples, config, 1.0, 1.0, seed=1) * 2
    rng = np.random.default_rng(0)
    soft = [rng.dirichlet(np.ones(r[1].length + 1), size=2).T[1:].astype(np.float32) for r in rows]  # null slot dropped
    for (_, targets), in zip(qa_preprocessor.training_dataset(rows, batch_size=64, shuffle=False, soft=soft, soft_weight=0.25)):
        targets = targets.numpy()
    by_length = sorted(range(len(rows)), key=lambda i: rows[i][1].length)  # one bucket, its order kept
    for row_targets, i in zip(targets, by_length):
        length, (start, end) = rows[i][1].length, rows[i][2:]
        hard = np.zeros((length, 2), np.float32)
        if start >= 0:
            hard[start, 0] = hard[end - 1, 1] = 1
        np.testing.assert_allclose(row_targets[:length], 0.75 * hard + 0.25 * soft[i], atol=1e-6)
        assert (row_targets[length:] == -1).all() and (row_targets[:length].sum(axis=0) <= 1 + 1e-6).all()


def test_a_student_trains_toward_its_teacher(qa_data, tiny_qa_run, tmp_path):
    """--teacher: the teacher's distributions over the training windows are computed once and kept
    in the run directory; a resumed run reads them back."""
    run_dir = tmp_path / "student"

    def train(epochs: int) -> None:
        main([
            "qa", "train", "--data-dir", str(qa_data), "--run-dir", str(run_dir), "--quiet", "--epochs", str(epochs),
            "--hidden", "16", "--word-dim", "8", "--dilations", "1", "--window-chars", "24", "--window-stride", "12",
            "--max-answer-chars", "12", "--min-char-count", "1", "--min-word-count", "1", "--batch-size", "8",
            "--span-loss", "softmax", "--word2vec-epochs", "0", "--teacher", str(tiny_qa_run), "--teacher", str(tiny_qa_run),
        ])

    train(epochs=1)
    cache = run_dir / qa_distillation.TEACHER_TARGETS
    stored = np.load(cache)
    per_position = stored["probabilities"]
    assert per_position.shape == (stored["lengths"].sum(), 2) and (per_position >= 0).all()
    per_window = np.split(per_position, np.cumsum(stored["lengths"])[:-1])
    assert all((p.sum(axis=0) <= 1 + 1e-5).all() for p in per_window)  # the rest is the null slot's
    assert (run_dir / "best.weights.h5").is_file()
    written = cache.stat().st_mtime_ns
    train(epochs=2)  # resumes from the backup for a second epoch
    assert cache.stat().st_mtime_ns == written
    assert json.loads((run_dir / "timing.json").read_text())["epochs"] == 2


def test_distillation_needs_the_softmax_span_loss(qa_data, tiny_qa_run, tmp_path):
    with pytest.raises(ValueError, match="softmax"):
        main([
            "qa", "train", "--data-dir", str(qa_data), "--run-dir", str(tmp_path / "run"), "--quiet", "--epochs", "1",
            "--hidden", "16", "--word-dim", "8", "--min-char-count", "1", "--word2vec-epochs", "0",
            "--span-loss", "sigmoid", "--teacher", str(tiny_qa_run),
        ])
    assert not (tmp_path / "run" / "config.json").exists()  # refused before any vocabulary is built


def test_answerless_crops_follow_their_own_rate():
    context = "北京是中国的首都。上海在东边。广州在南边。长江很长。黄河也很长。"
    examples = [QAExample(f"q{i}", "首都是哪里？", context, (("北京", 0),)) for i in range(20)]
    config = qa_config.Config(window_chars=64, window_stride=32)

    def answerless(rate: float) -> int:
        rows = qa_preprocessor.training_windows(examples, config, 0.0, 1.0, seed=1, crop_negative_rate=rate)
        return sum(1 for _, _, start, _ in rows if start < 0)  # --negative-rate 0: only crops can be answerless

    assert answerless(0.0) == 0 < answerless(0.5) < answerless(1.0) == 20


def test_foreign_passages_are_other_questions_passages_on_the_topic_without_the_answer():
    examples = [
        QAExample("capital", "中国的首都是哪里？", "北京是中国的首都。", (("北京", 0),), ("北京",)),
        QAExample("economy", "上海是什么中心？", "上海是中国最大的经济中心。", (("经济中心", 7),)),
        QAExample("river", "黄河流入哪个海？", "黄河流入渤海。", (("渤海", 4),)),
        # Another passage that answers the first question in its own words: never its negative.
        QAExample("answers", "哪座城市是中国的首都？", "中国的首都是北京，也是中国的政治中心。", (("北京", 6),)),
    ]
    config = qa_config.Config(window_chars=64, window_stride=32)
    rows = qa_preprocessor.foreign_passage_windows(examples, config, rate=1.0, seed=1)
    negatives = {"".join(question): "".join(window.tokens) for question, window, start, end in rows if start == end == -1}
    assert negatives["中国的首都是哪里？"] == "上海是中国最大的经济中心。"  # shares 中国; holds no 北京
    # Each foreign passage comes with the question's own answer sentence alone.
    positives = {"".join(question): (window, start, end) for question, window, start, end in rows if start >= 0}
    assert positives.keys() == negatives.keys()
    window, start, end = positives["中国的首都是哪里？"]
    assert "".join(window.tokens)[start:end] == "北京"
    assert qa_preprocessor.foreign_passage_windows(examples, config, rate=0.0, seed=1) == []


def test_evaluate_prints_json_last_line(qa_data, tiny_qa_store, capsys, tmp_path):
    plot = tmp_path / "reliability.png"
    main([
        "qa", "evaluate", "--data-dir", str(qa_data), "--model-root", str(tiny_qa_store), "--reliability-plot", str(plot),
    ])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "qa"
    assert result["f1"] == result["cmrc_dev"]["f1"] and result["em"] == result["cmrc_dev"]["em"]
    assert {"accuracy", "f1", "score"} <= set(result["webqa_max"]) and result["webqa_sum"]["questions"] == 4
    report = result["cmrc_dev_report_half"]
    assert result["ece"] == report["reliability"]["ece"] and 0 <= result["ece"] <= 1
    assert (result["api_em"], result["api_f1"]) == (report["api"]["em"], report["api"]["f1"])
    assert sum(row["count"] for row in report["reliability"]["bins"]) == report["questions"]
    assert 0 <= report["wrong_passage"]["withheld"] <= 1
    short = report["short_passages"]  # each question over its answer's sentence alone
    assert result["short_api_f1"] == short["api"]["f1"] and 0 < short["questions"] <= report["questions"]
    assert short["mean_chars"] > 0 and 0 <= short["ece"] <= 1
    assert plot.read_bytes()[:4] == b"\x89PNG"
    webqa = result["webqa_sum"]["reliability"]  # the probability over many passages, as the service answers (sum)
    assert webqa["n"] == 4 and 0 <= webqa["ece"] <= 1 and result["webqa_ece"] == webqa["ece"]


def test_dev_halves_split_by_passage():
    dev = [QAExample(f"q{i}", f"问题{i}", f"段落{i // 2}", (("段", 0),)) for i in range(9)]
    fit, report = qa_grading.dev_halves(dev)
    assert sorted(fit + report) == list(range(9))
    assert not {dev[i].context for i in fit} & {dev[i].context for i in report}
    assert len(fit) == 5 and len(report) == 4  # passages 0, 2, 4 and 1, 3


def test_short_passages_cut_the_answers_sentence_and_another():
    context = "第一句话。第二句在这里！答案在第三句北京里。第四句？最后一句没有结束"
    example = QAExample("q", "问题", context, (("北京", context.index("北京")),))
    assert qa_grading.short_passages(example) == ("答案在第三句北京里。", "最后一句没有结束")  # not the neighbours
    across = QAExample("q", "问题", context, (("里。第四", context.index("里。第四")),))
    assert qa_grading.short_passages(across)[0] == "答案在第三句北京里。第四句？"  # an answer over two sentences keeps both
    assert qa_grading.short_passages(QAExample("q", "问题", "只有一句。", (("一句", 2),))) == ("只有一句。", None)
    assert qa_grading.short_passages(QAExample("q", "问题", context, (("无", -1),))) is None
    assert qa_preprocessor.sentence_bounds("甲。乙") == [(0, 2), (2, 3)] and qa_preprocessor.sentence_bounds("") == []


@pytest.mark.parametrize(("inside_score", "ratio"), [(0.2, 0.5), (0.01, None)])
def test_the_nested_ratio_is_the_one_that_answers_dev_best(inside_score, ratio):
    # Every reference is the span inside the reader's best one; where it scores 0.2 against the
    # best's 0.4, the largest ratio that reaches it wins; at 0.01 only ratios below 0.05 would,
    # and none in NESTED_RATIOS does: the best span stays.
    context = "尤金袋鼠分布在澳洲南部岛屿及西岸地区"
    dev = [QAExample(f"q{i}", "尤金袋鼠分布在哪里？", f"{context}{i}", (("澳洲南部岛屿及西岸地区", 7),)) for i in range(6)]
    answers = [[Answer(context, 0.4, 0, 0, 18), Answer("澳洲南部岛屿及西岸地区", inside_score, 0, 7, 18)]] * 6
    chosen, table = qa_calibrate.fit_nested_ratio((dev, answers))
    assert chosen == ratio and [row["ratio"] for row in table] == list(qa_calibrate.NESTED_RATIOS)
    assert table[0]["em"] == 0.0 and max(row["em"] for row in table) == (100.0 if ratio else 0.0)


def test_answered_scores_count_a_withheld_answer_as_zero():
    probabilities, em, f1 = np.array([0.9, 0.3, 0.05]), np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.5, 1.0])
    row = qa_grading.answered_scores(probabilities, em, f1, 0.1)
    assert row == {"threshold": 0.1, "answered": round(2 / 3, 4), "em_answered": 50.0, "em": 33.33, "f1": 50.0}
    assert qa_grading.answered_scores(probabilities, em, f1, 0.95)["em_answered"] is None


def test_calibrate_refits_an_exported_reader_in_place(qa_data, tiny_qa_store, tmp_path, capsys):
    root = tmp_path / "models"
    shutil.copytree(tiny_qa_store, root)
    version_dir = root / "qa" / "1"
    manifest = model_store.read_manifest(version_dir)
    manifest.pop("calibration")
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    main(["qa", "calibrate", "--data-dir", str(qa_data), "--model-root", str(root)])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    refitted = model_store.read_manifest(version_dir)
    assert result["calibrated"] == str(version_dir) and refitted["calibration"]["method"] == "platt"
    assert refitted["metrics"]["cmrc_dev_report_half"]["reliability"]["ece"] == result["ece"]
    assert refitted["decoding"]["nested_answer_ratio"] in qa_calibrate.NESTED_RATIOS
    assert refitted["signature"] == manifest["signature"]  # the rest of the manifest is kept


def test_word2vec_rows_follow_the_word_lookup():
    sentences = [["北京", "是", "首都"], ["上海", "是", "城市"]] * 50
    table = word2vec.word2vec_table(sentences, ["是", "北京", "未见"], dim=8, epochs=2, seed=1)
    assert table.shape == (5, 8) and table.dtype == np.float32
    # Rows 0 (padding), 1 (out of vocabulary) and the unseen word keep Keras-like small random values.
    assert np.abs(table[[0, 1, 4]]).max() <= 0.05
    model_vectors = table[[2, 3]]  # 是, 北京: word2vec's, not the random start
    assert not np.allclose(model_vectors, np.random.default_rng(1).uniform(-0.05, 0.05, (5, 8))[[2, 3]])


def test_character_word2vec_reads_the_units_the_char_lookup_sees():
    """--char-word2vec: the corpus is each text's normalised code points, so its table rows line up
    with ``config.chars`` (lower-cased Latin, as the reader's lookup)."""
    texts = ["北京是首都", "Beijing 北京"]
    corpus = word2vec.char_sentences(texts)
    assert corpus[0] == [str(ord(c)) for c in "北京是首都"]
    assert corpus[1][0] == str(ord("b"))  # lower-cased like the reader's input
    chars = [int(c) for c in dict.fromkeys(corpus[0])]
    table = word2vec.word2vec_table(corpus * 50, [str(c) for c in chars], dim=8, epochs=2, seed=1)
    assert table.shape == (len(chars) + 2, 8)
    assert np.abs(table[2:]).max() > 0.05  # trained vectors, not the small random start


def test_question_attention_trains_and_exports(qa_data, tmp_path):
    """--question-attention: each passage character attends over the question; the reader trains,
    and its export answers through the same signature."""
    run_dir = tmp_path / "run"
    main([
        "qa", "train", "--data-dir", str(qa_data), "--run-dir", str(run_dir), "--quiet", "--epochs", "1",
        "--hidden", "16", "--word-dim", "8", "--dilations", "1,2", "--window-chars", "24", "--window-stride", "12",
        "--max-answer-chars", "12", "--min-char-count", "1", "--min-word-count", "1", "--batch-size", "8",
        "--word2vec-epochs", "0", "--question-attention",
    ])
    assert qa_config.Config.of_run(run_dir).question_attention
    main(["qa", "export", "--data-dir", str(qa_data), "--run-dir", str(run_dir), "--model-root", str(tmp_path / "models")])
    serve = tf.saved_model.load(str(tmp_path / "models" / "qa" / "1")).signatures["serving_default"]
    out = serve(
        question_tokens=tf.constant(pad_tokens([segment(QUESTIONS[0])])),
        passage_tokens=tf.constant(pad_tokens([segment(PASSAGES[0][0])])),
    )
    assert out["score"].shape[0] == 1


def test_word2vec_can_also_read_the_other_tasks_training_text(tmp_path):
    """--word2vec-extra: word2vec also reads the NER and headline training text under the shared
    data folder (the parent of --data-dir); the vocabulary stays the QA data's."""
    from tests.conftest import FIXTURES
    from tests.fixtures.headline_corpus import write_headline_data
    from tests.fixtures.qa_corpus import write_qa_data
    from training.data.unlabelled import unlabelled_texts

    shared = tmp_path / "shared"
    write_qa_data(shared / "qa")
    shutil.copytree(FIXTURES / "ner" / "msra", shared / "ner" / "msra")
    (shared / "ner" / "cluener2020").mkdir(parents=True)
    (shared / "ner" / "cluener2020" / "train.json").write_text(
        json.dumps({"text": "浙商银行企业信贷部叶老桂博士", "label": {"name": {"叶老桂": [[9, 11]]}}}, ensure_ascii=False) + "\n"
    )
    write_headline_data(shared / "headline")
    (shared / "headline" / "csl_titles_only").mkdir()
    (shared / "headline" / "csl_titles_only" / "train_titles.tsv").write_text("to category\t基于深度学习的图像分割\t计算机\n")
    texts = unlabelled_texts(shared, ["ner", "headline"])
    assert "浙商银行企业信贷部叶老桂博士" in texts and "基于深度学习的图像分割" in texts
    posts = unlabelled_texts(shared, ["news_posts"])
    assert len(posts) == 12  # LCSTS's training posts, less the one that repeats a test post

    run_dir = tmp_path / "run"
    main([
        "qa", "train", "--data-dir", str(shared / "qa"), "--run-dir", str(run_dir), "--quiet", "--epochs", "1",
        "--hidden", "16", "--word-dim", "8", "--dilations", "1", "--window-chars", "24", "--window-stride", "12",
        "--max-answer-chars", "12", "--min-char-count", "1", "--min-word-count", "1", "--batch-size", "8",
        "--word2vec-epochs", "1", "--word2vec-extra", "ner", "--word2vec-extra", "headline", "--char-word2vec",
    ])
    config = qa_config.Config.of_run(run_dir)
    assert "叶老桂" not in config.words  # NER text shaped the vectors, not the vocabulary
    assert ord("桂") not in config.chars
    assert (run_dir / "best.weights.h5").is_file()
