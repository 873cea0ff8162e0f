"""The headline task end to end on made-up pairs: train → export → evaluate → serving signature."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import tensorflow as tf

from app import model_store
from app.tasks.headline.pipeline import call_generator
from app.tasks.headline.spec import HeadlineDecoding
from tests.conftest import TINY_HEADLINE_OPTIONS, _export, _train
from training.__main__ import main
from training.layers.attention import MemoryAttention
from training.layers.copy_prior import CopyPrior
from training.layers.pointer import PointerMixture
from training.data.headline import Pair
from training.metrics import paired_difference, rouge_scores
from training.tasks.headline import backbone as headline_backbone
from training.tasks.headline import config as headline_config
from training.tasks.headline import head as headline_head
from training.tasks.headline import train as headline_train
from training.tasks.headline import reranker
from training.tasks.headline.ensemble import HeadlineEnsemble
from training.tasks.headline.evaluate import selection_sets
from training.tasks.headline.preprocessor import read_corpus, repeat_genres, training_arrays

pytestmark = pytest.mark.slow  # the slow tier (`make test-slow`): train→export smoke runs

TEXTS = [
    "针对图像分割中存在的问题,提出了一种基于深度学习的图像分割方法.",
    "未见过的字符😀、ＡＢＣ全角、控制符\x07和生僻字𠀀也不出错.",
    "短",
    "长" * 600,
]


def _signature(store):
    return tf.saved_model.load(str(model_store.resolve_version(store / "headline"))).signatures["serving_default"]


def _generate(serve, texts, beam_width=3, max_length=20, alpha=1.0, block=False):
    decoding = HeadlineDecoding(beam_width=beam_width, max_length=max_length, length_penalty=alpha, block_repeated_trigrams=block)
    return call_generator(serve, texts, beam_width, max_length, decoding)


def test_training_writes_checkpoint_config_and_logs(tiny_headline_run):
    assert (tiny_headline_run / "best.weights.h5").is_file()
    assert any((tiny_headline_run / "logs").rglob("events.out.tfevents*"))
    config = headline_config.Config.of_run(tiny_headline_run)
    assert config.decoder_units == 32 and ord("基") in config.chars
    assert config.corpus == "papers_news" and ord("市") in config.chars  # the news posts' characters too


def test_news_training_pairs_leave_out_the_posts_of_validation_and_test(headline_data):
    from training.data.headline import news_pairs, test_sets

    train, val = news_pairs(headline_data)
    tested = {p.source for p in test_sets(headline_data)["lcsts_test"]} | {p.source for p in val}
    assert len(train) == 12 and not tested & {p.source for p in train}


def test_news_repeats_weigh_the_posts_without_changing_the_vocabulary(headline_data):
    training, _ = read_corpus(headline_data, "papers_news", 6, 13)
    once, twice = repeat_genres(training, {}), repeat_genres(training, {"news": 2})
    assert len(twice) == len(once) + len(training["news"])
    assert twice[: len(training["papers"])] == training["papers"] and twice[-len(training["news"]):] == training["news"]


def test_the_reports_corpus_trains_on_three_quarters_of_the_headed_texts(headline_data):
    training, held = read_corpus(headline_data, "papers_news_reports", 6, 13)
    assert (len(training["reports"]), len(held["reports"])) == (6, 2)
    assert selection_sets(headline_data, held_out=6, seed=13)["reports_held_out"] == held["reports"]
    assert repeat_genres(training, {"reports": 3})[-18:] == training["reports"] * 3


def test_a_version_trains_further_on_reports_whose_characters_it_lacks(tiny_headline_run, tiny_headline_store, headline_data, tmp_path, capsys):
    source = model_store.resolve_version(tiny_headline_store / "headline")
    main(["headline", "train", "--data-dir", str(headline_data), "--run-dir", str(tmp_path / "reports"), "--epochs", "1",
          "--init-from", str(source), *TINY_HEADLINE_OPTIONS, "--corpus", "papers_news_reports"])
    config = headline_config.Config.of_run(tmp_path / "reports")
    assert config.corpus == "papers_news_reports" and config.chars == headline_config.Config.of_run(tiny_headline_run).chars
    assert ord("熊") not in config.chars and "val_rouge_l_reports" in capsys.readouterr().out


def test_export_layout_and_manifest(tiny_headline_store):
    version_dir = model_store.resolve_version(tiny_headline_store / "headline")
    manifest = model_store.read_manifest(version_dir)
    assert manifest["task"] == "headline" and manifest["version"] == 1
    assert manifest["decoding"] == {"beam_width": 3, "max_length": 20, "length_penalty": 1.0, "block_repeated_trigrams": False}
    assert set(manifest["metrics"]) == {"clge_csl_test", "csl_ts_test", "lcsts_test", "peoples_daily_test"}
    assert manifest["corpus"] == "papers_news" and "LCSTS" in manifest["data_source"]
    test = manifest["metrics"]["clge_csl_test"]
    assert {"greedy", "beam_3", "baselines"} <= set(test) and 0 <= test["beam_3"]["rouge-l"] <= 1
    lead = next(name for name in test["baselines"] if name.startswith("lead_"))
    assert set(test["baselines"]) == {lead, "first_sentence", "oracle_sentence"}


def test_exported_generator_matches_the_in_process_one(tiny_headline_run, tiny_headline_store):
    model = headline_backbone.load_trained(tiny_headline_run)
    expected = headline_head.make_generator(model)(tf.constant(TEXTS), 3, 20, 1.0, False)
    exported = _generate(_signature(tiny_headline_store), TEXTS)
    np.testing.assert_array_equal(exported["headlines"].numpy(), expected["headlines"].numpy())
    np.testing.assert_allclose(exported["scores"].numpy(), expected["scores"].numpy(), rtol=1e-5, atol=1e-5)
    assert exported["truncated"].numpy().tolist() == [False, False, False, True]


def test_training_continues_an_exported_version(tiny_headline_run, tiny_headline_store, headline_data, tmp_path, capsys):
    """The subclassed model's variables are named by the model alone in the SavedModel; the export's
    variable_paths.json lets a warm start find each, and the held-out score comes back. The run
    keeps the version's characters, though its own options would count fewer."""
    source = model_store.resolve_version(tiny_headline_store / "headline")
    assert None not in json.loads((source / "variable_paths.json").read_text())
    capsys.readouterr()
    main(["headline", "train", "--data-dir", str(headline_data), "--run-dir", str(tmp_path / "warm"), "--epochs", "0",
          "--init-from", str(source), *TINY_HEADLINE_OPTIONS, "--min-char-count", "9"])
    baseline = float(capsys.readouterr().out.split("held-out ROUGE_L ")[1].split()[0])
    assert baseline == pytest.approx(json.loads((tiny_headline_run / "timing.json").read_text())["best"], abs=1e-4)
    assert json.loads((tmp_path / "warm" / "warm_start.json").read_text())["path"] == str(source)
    assert headline_config.Config.of_run(tmp_path / "warm").chars == headline_config.Config.of_run(tiny_headline_run).chars


def test_word2vec_starts_the_character_table_in_the_lookups_numbering(headline_data, tmp_path):
    run_dir = tmp_path / "w2v"
    main(["headline", "train", "--data-dir", str(headline_data), "--run-dir", str(run_dir), "--epochs", "1",
          "--word2vec-epochs", "2", *TINY_HEADLINE_OPTIONS])
    config = headline_config.Config.of_run(run_dir)
    training, _ = read_corpus(headline_data, config.corpus, 6, 13)
    pairs = repeat_genres(training, {})
    args = argparse.Namespace(data_dir=str(headline_data), word2vec_extra=[], word2vec_epochs=2, seed=13)
    table = headline_train._word2vec_embeddings(config, pairs, args)
    assert table.shape == (config.vocab_size, config.embedding_dim)
    # Padding, unknown, start and end (ids 0-3) keep word2vec_table's random start; the characters
    # from id 4 on, the commonest first, have word2vec's vectors.
    start = np.random.default_rng(13).uniform(-0.05, 0.05, table.shape).astype("float32")
    np.testing.assert_array_equal(table[:4], start[:4])
    assert not np.allclose(table[4], start[4])


def test_beam_width_one_is_the_greedy_search(tiny_headline_run):
    model = headline_backbone.load_trained(tiny_headline_run)
    greedy = headline_head.make_greedy(model)(tf.constant(TEXTS), 20)
    beam = headline_head.make_generator(model)(tf.constant(TEXTS), 1, 20, 0.0, False)
    assert beam["headlines"].numpy()[:, 0].tolist() == greedy.numpy().tolist()


@pytest.mark.parametrize("beam_width", [1, 2, 5])
def test_signature_shapes_and_ranking(tiny_headline_store, beam_width):
    out = _generate(_signature(tiny_headline_store), TEXTS, beam_width=beam_width, max_length=7, block=True)
    assert out["headlines"].numpy().shape == (len(TEXTS), beam_width)
    scores = out["scores"].numpy()
    assert (np.diff(scores, axis=1) <= 1e-6).all() and (out["log_probs"].numpy() <= 0).all()
    for row in out["headlines"].numpy():
        for text in row:
            assert len(text.decode("utf-8")) <= 7  # max_length counts tokens, the end token included


def test_decoder_step_matches_teacher_forcing(tiny_headline_run):
    """The step function (used by beam search) and the training graph compute the same distribution."""
    model = headline_backbone.load_trained(tiny_headline_run)
    source, _ = model.encode_text(tf.constant(TEXTS[:2]))
    target = tf.constant([[headline_config.START, 5, 6, 7], [headline_config.START, 8, 9, 4]])
    full = model((source, target)).numpy()
    state = model.encode(source)
    for t in range(target.shape[1]):
        log_probs, state = model.step(target[:, t], state)
        np.testing.assert_allclose(log_probs.numpy(), full[:, t], rtol=1e-4, atol=1e-5)


def test_copy_prior_boosts_source_tokens_and_mixes_to_a_distribution():
    layer = CopyPrior(8)
    layer.log_scale.assign(np.full(8, 1.0, np.float32))
    prior = layer.prior(tf.constant([[4, 5, 0, 3]])).numpy()[0]
    assert prior[4] == prior[5] > prior[6] and prior[3] == prior[6]  # the end token never counts as present
    mixed = layer.mix(tf.zeros([1, 2, 8]), tf.constant(prior[None]))
    np.testing.assert_allclose(tf.reduce_logsumexp(mixed, axis=-1).numpy(), 0.0, atol=1e-6)


def test_attention_ignores_padded_memory_and_round_trips():
    layer = MemoryAttention(num_heads=2, key_dim=4, name="attention")
    query, memory = tf.random.normal([2, 3, 5]), tf.random.normal([2, 6, 7])
    mask = tf.constant([[True] * 4 + [False] * 2] * 2)
    out = layer(query, memory, mask)
    changed = tf.concat([memory[:, :4], 100 * tf.random.normal([2, 2, 7])], axis=1)
    np.testing.assert_allclose(layer(query, changed, mask).numpy(), out.numpy(), atol=1e-5)
    one_step = layer(query[:, 1:2], memory, mask)
    np.testing.assert_allclose(one_step.numpy()[:, 0], out.numpy()[:, 1], atol=1e-5)
    clone = MemoryAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_evaluate_prints_the_table_and_a_json_line(tiny_headline_store, headline_data, capsys):
    main(["headline", "evaluate", "--data-dir", str(headline_data), "--model-root", str(tiny_headline_store)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["task"] == "headline" and 0 <= last["rouge_l"] <= 1
    assert last["clge_csl_test"]["beam_3"]["pairs"] == 10
    assert 0 <= last["lcsts_test_rouge_l"] <= 1 and last["lcsts_test"]["beam_3"]["pairs"] == 4
    assert 0 <= last["peoples_daily_test_rouge_l"] <= 1 and last["peoples_daily_test"]["beam_3"]["pairs"] == 2


def test_evaluate_selection_reads_the_held_out_and_validation_sets_not_test(tiny_headline_store, headline_data, capsys):
    main(["headline", "evaluate", "--selection", "--data-dir", str(headline_data), "--model-root", str(tiny_headline_store)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert not any("test" in name for name in last)
    # The run held out 6 abstracts and selected on the first 6 validation posts: all the fixture's 2.
    assert {name: last[name]["beam_3"]["pairs"] for name in ("papers_held_out", "lcsts_val_selection")} == {
        "papers_held_out": 6, "lcsts_val_selection": 2
    }
    assert "lcsts_val_unused" not in last and 0 <= last["lcsts_val_selection_rouge_l"] <= 1
    sets = selection_sets(headline_data, held_out=1, seed=13)
    assert [len(sets[name]) for name in ("papers_held_out", "lcsts_val_selection", "lcsts_val_unused")] == [1, 1, 1]


def test_evaluate_against_another_version_compares_them_text_by_text(tiny_headline_store, headline_data, capsys):
    options = ["--selection", "--data-dir", str(headline_data), "--model-root", str(tiny_headline_store)]
    main(["headline", "evaluate", *options, "--against", str(tiny_headline_store)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    against = last["against"]
    assert against["model"].endswith("headline/1") and against["lcsts_val_selection_rouge_l"] == last["lcsts_val_selection_rouge_l"]
    assert against["same_held_out"]
    assert against["difference"]["papers_held_out"] == {"mean": 0, "low": 0, "high": 0, "better": 0, "worse": 0, "items": 6}
    with pytest.raises(SystemExit, match="add --selection"):
        main(["headline", "evaluate", *options[1:], "--against", str(tiny_headline_store)])


def test_paired_difference_by_hand():
    before, after = [0.2, 0.4, 0.5, 0.1], [0.3, 0.4, 0.7, 0.0]  # differences +0.1, 0, +0.2, −0.1
    d = paired_difference(before, after)
    assert (d["mean"], d["better"], d["worse"], d["items"]) == (0.05, 0.5, 0.25, 4)
    assert -0.1 <= d["low"] <= d["mean"] <= d["high"] <= 0.2
    assert paired_difference(before, before)["low"] == paired_difference(before, before)["high"] == 0


def test_rouge_and_bleu_by_hand():
    scores = rouge_scores(["基于深度学习", "abc"], ["基于学习", "abd"])
    # pair 1: R-1 P 4/6 R 1, F 0.8; R-2 2 of 5 vs 2 of 3 → 0.5; LCS 4 → 0.8. Pair 2: 2/3 each, R-2 1/2.
    assert scores["rouge-1"] == round((0.8 + 2 / 3) / 2, 4)
    assert scores["rouge-2"] == round((0.5 + 0.5) / 2, 4)
    assert scores["rouge-l"] == round((0.8 + 2 / 3) / 2, 4)
    assert rouge_scores(["完全一致"], ["完全一致"])["bleu"] == 1.0


def test_python_loop_search_of_the_benchmark_matches_the_graph(tiny_headline_store):
    """``bench/headline_decode.py`` compares speed only if both searches give the same n-best."""
    from bench.headline_decode import python_loop_beam_search

    version_dir = model_store.resolve_version(tiny_headline_store / "headline")
    manifest = model_store.read_manifest(version_dir)
    loaded = tf.saved_model.load(str(version_dir))
    scorer = loaded.signatures["next_token_log_probs"]
    vocabulary = scorer(text=tf.constant([""]), prefix=tf.constant([[headline_config.START]]))["vocabulary"].numpy()
    decoding = {**manifest["decoding"], "max_length": 8}
    for text in TEXTS[:3]:
        out = _generate(loaded.signatures["serving_default"], [text], beam_width=3, max_length=8)
        expected = [(h.decode(), s) for h, s in zip(out["headlines"].numpy()[0], out["scores"].numpy()[0])]
        found = python_loop_beam_search(scorer, text, 3, decoding, manifest["tokens"])
        assert [b"".join(vocabulary[i] for i in ids).decode() for ids, _ in found] == [h for h, _ in expected]
        np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], rtol=1e-4, atol=1e-4)


def test_pointer_scatters_attention_onto_the_source_tokens():
    layer = PointerMixture(6)
    source = tf.constant([[4, 5, 4, 0]])
    weights = tf.constant([[[0.25, 0.5, 0.25, 0.0]]])  # two positions hold token 4
    features = tf.zeros([1, 1, 3])
    uniform = tf.fill([1, 1, 6], float(np.log(1 / 6)))
    out = layer(uniform, weights, source, features).numpy()[0, 0]  # the gate starts at σ(0) = 0.5
    expected = 0.5 / 6 + 0.5 * np.array([0, 0, 0, 0, 0.5, 0.5])
    np.testing.assert_allclose(np.exp(out), expected, atol=1e-6)
    assert PointerMixture.from_config(layer.get_config()).vocab_size == 6


def test_the_answer_says_whether_the_text_is_of_a_kind_the_model_learned(tiny_headline_store):
    """Export fits the threshold on the held-out texts of each genre; the pipeline compares the best
    headline's log-probability per token with it."""
    from app.tasks.headline.pipeline import HeadlinePipeline, log_prob_per_token
    from app.tasks.headline.spec import HeadlineSpec

    version_dir = model_store.resolve_version(tiny_headline_store / "headline")
    manifest = model_store.read_manifest(version_dir)
    check = manifest["domain_check"]
    assert check["min_log_prob_per_token"] <= 0 and "papers" in check["fitted_on"] and "news" in check["fitted_on"]
    spec = HeadlineSpec.model_validate(manifest)
    pipeline = HeadlinePipeline.from_spec(tf.saved_model.load(str(version_dir)).signatures["serving_default"], spec)
    texts = ["针对图像分割中存在的问题,提出了一种基于深度学习的图像分割方法.", "今天晚饭吃了红烧肉和米饭，味道很好。"]
    for text, candidates in zip(texts, pipeline.read([pipeline.job(t) for t in texts])):
        answer = pipeline.respond(text, candidates)
        assert answer.in_domain == (log_prob_per_token(candidates[0]) >= check["min_log_prob_per_token"])
    metrics = manifest["metrics"]["lcsts_test"]["beam_3"]
    assert 0 <= metrics["in_domain_share"] <= 1



def test_a_reverse_run_reranks_the_exported_beam(tiny_headline_run, headline_data, tmp_path_factory, tmp_path, monkeypatch):
    """``train --reverse`` learns headline → text; ``export --reranker`` reorders the same beam by
    ``score + weight · log P(text | headline)``, that log-probability being the reverse model's
    teacher-forced one on the pair turned around as training builds it."""
    reverse_run = _train(
        tmp_path_factory, "headline", headline_data, "--epochs", "1", "--reverse", "--max-source-chars", "24",
        "--max-title-tokens", "40", *TINY_HEADLINE_OPTIONS,
    )
    assert headline_config.Config.of_run(reverse_run).reverse
    store = _export(
        tmp_path_factory, "headline", headline_data, tiny_headline_run, "--beam-width", "3", "--max-length", "20",
        "--reranker", str(reverse_run), "--reranker-weight", "0.5",
    )
    version = model_store.resolve_version(store / "headline")
    manifest = model_store.read_manifest(version)
    assert manifest["reranker"]["weight"] == 0.5 and manifest["reranker"]["reads_chars"] == 39
    assert "--reverse" in manifest["reranker"]["training_commands"][-1]
    paths = json.loads((version / "variable_paths.json").read_text())
    assert len(paths) == len(set(paths)) and any(p.startswith("headline_reverse/") for p in paths)

    forward = headline_backbone.load_trained(tiny_headline_run)
    reverse = headline_backbone.load_trained(reverse_run, name="headline_reverse")
    texts = TEXTS[:3]
    plain = headline_head.make_generator(forward)(tf.constant(texts), 3, 20, 1.0, False)
    reranked = _generate(_signature(store), texts)
    beams = plain["headlines"].numpy()
    candidate_ids = forward.encode_title(tf.constant(beams.reshape(-1))).to_tensor()
    monkeypatch.setattr(reranker, "ROWS_PER_PASS", 4)  # 9 candidates: three passes, the last padded
    scored = reranker.text_log_probs(reverse, tf.constant(texts), tf.reshape(candidate_ids, [len(texts), 3, -1])).numpy()
    for i, text in enumerate(texts):
        beam = beams[i].tolist()
        assert sorted(reranked["headlines"].numpy()[i].tolist()) == sorted(beam)  # reordered, not regenerated
        order = [beam.index(h) for h in reranked["headlines"].numpy()[i]]
        expected = plain["scores"].numpy()[i] + 0.5 * scored[i]
        np.testing.assert_allclose(reranked["scores"].numpy()[i], expected[order], rtol=1e-4, atol=1e-4)
        assert list(reranked["scores"].numpy()[i]) == sorted(reranked["scores"].numpy()[i], reverse=True)
        (source, decoder_input), target = training_arrays(reverse, [Pair(h.decode(), text) for h in beam])
        log_probs = reverse((source, decoder_input)).numpy()
        by_hand = np.where(target > 0, np.take_along_axis(log_probs, target[..., None], -1)[..., 0], 0).sum(-1)
        np.testing.assert_allclose(scored[i], by_hand, rtol=1e-4, atol=1e-3)

    with pytest.raises(SystemExit, match="not a --reverse run"):
        main(["headline", "export", "--run-dir", str(tiny_headline_run), "--reranker", str(tiny_headline_run),
              "--model-root", str(tmp_path), "--data-dir", str(tmp_path / "none")])


def test_an_ensemble_mixes_the_members_distributions_in_one_search(tiny_headline_run, headline_data, tmp_path_factory):
    """``export --ensemble`` searches with the members' mixture log((P₁ + P₂) / 2), read at the first
    member's ids, though the second member (another seed, rarer characters dropped) numbers and
    chooses its characters differently: a character it lacks gets probability 0 from it."""
    other_run = _train(
        tmp_path_factory, "headline", headline_data, "--epochs", "1", *TINY_HEADLINE_OPTIONS, "--min-char-count", "9",
        "--seed", "14",
    )
    store = _export(
        tmp_path_factory, "headline", headline_data, tiny_headline_run, "--beam-width", "3", "--max-length", "20",
        "--ensemble", str(other_run),
    )
    version = model_store.resolve_version(store / "headline")
    manifest = model_store.read_manifest(version)
    assert [m["run_dir"] for m in manifest["ensemble"]] == [str(tiny_headline_run), str(other_run)]
    assert "--seed 14" in " ".join(manifest["ensemble"][1]["training_commands"][-1].split())
    paths = json.loads((version / "variable_paths.json").read_text())
    assert len(paths) == len(set(paths)) and any(p.startswith("headline_seq2seq_1/") for p in paths)

    first, second = headline_backbone.load_trained(tiny_headline_run), headline_backbone.load_trained(other_run)
    lacking = set(first.config.chars) - set(second.config.chars)
    assert lacking

    texts = TEXTS[:2]
    source = first.encode_text(tf.constant(texts))[0]
    prefix = np.array([[headline_config.START, 4, 5, 6], [headline_config.START, 7, 4, 8]], np.int32)
    second_id = {c: i + 4 for i, c in enumerate(second.config.chars)}
    to_second = np.array([*range(4), *(second_id.get(c, headline_config.UNK) for c in first.config.chars)])
    assert any(second_id[c] != i + 4 for i, c in enumerate(first.config.chars) if c in second_id)  # renumbered
    first_log_probs = first((source, prefix)).numpy()
    second_log_probs = second((tf.gather(to_second, source), to_second[prefix])).numpy()[..., to_second]
    second_log_probs[..., [i + 4 for i, c in enumerate(first.config.chars) if c in lacking]] = -np.inf
    by_hand = np.logaddexp(first_log_probs, second_log_probs) - np.log(2)
    served = tf.saved_model.load(str(version)).signatures["next_token_log_probs"](text=tf.constant(texts), prefix=prefix)
    np.testing.assert_allclose(served["log_probs"].numpy(), by_hand, rtol=1e-4, atol=1e-4)

    in_process = headline_head.make_generator(HeadlineEnsemble([first, second]))(tf.constant(texts), 3, 20, 1.0, False)
    answered = _generate(_signature(store), texts)
    assert answered["headlines"].numpy().tolist() == in_process["headlines"].numpy().tolist()
    np.testing.assert_allclose(answered["log_probs"].numpy(), in_process["log_probs"].numpy(), rtol=1e-4, atol=1e-4)
