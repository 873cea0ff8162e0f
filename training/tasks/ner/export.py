"""``python -m training ner export``: one run, or several averaged, as a SavedModel taking raw
text and answering tags and entities (normalisation, lookup and Viterbi in the graph), with the
CRF's temperature fitted on the run's held-out sentences."""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import tensorflow as tf

from app.tasks.text import encode_texts
from training import publishing, runs
from training.cli import export_version
from training.data.tags import as_bio
from training.tasks.ner.backbone import build_ensemble, lexicon_layer, load_tagger
from training.tasks.ner.calibrate import fit_temperature
from training.tasks.ner.config import CORPORA, SIGNATURE, TASK, WARMUP_TEXT, Config
from training.tasks.ner.evaluate import entity_types, evaluate_saved_model, headline_figures
from training.tasks.ner.head import make_tagger
from training.tasks.ner.preprocessor import read_corpus


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    with publishing.float16_weights(args.float16_weights):
        if len(run_dirs) == 1:
            model, config = load_tagger(run_dirs[0])
            members = [(model, config)]
        else:
            shared = lexicon_layer(Config.of_run(run_dirs[0]))
            members = [load_tagger(d, f"member_{i}", shared) for i, d in enumerate(run_dirs)]
            config = members[0][1]
            if any(c.tags != config.tags or c.lexicon_max_word_length != config.lexicon_max_word_length for _, c in members):
                raise ValueError("ensemble members must share their tags and lexicon settings")
            model = build_ensemble([m for m, _ in members])
    if args.int8_embeddings:
        publishing.quantize_embeddings(model)
    calibration = _fit_calibration(model, config, Path(args.data_dir))
    tagger = make_tagger(model, config.tags, calibration["temperature"])
    tag_names = tf.constant([as_bio(t) for t in config.tags])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        codepoints = encode_texts(text)
        mask = codepoints != 0
        out = tagger(codepoints)
        return {
            "tags": tf.where(mask, tf.gather(tag_names, out.pop("path")), ""),
            "lengths": tf.reduce_sum(tf.cast(mask, tf.int32), axis=1),
            **out,  # confidence, entity_starts/_ends/_types/_probabilities
        }

    export_version(
        args,
        task=TASK,
        model=model,
        serve=serve,
        evaluate=lambda staged: evaluate_saved_model(staged, Path(args.data_dir), config.corpus, entity_types(config.tags)),
        headline=headline_figures,
        data_source=CORPORA[config.corpus].source,
        extra={
            "corpus": config.corpus,
            "encoder": config.encoder,
            "tags": list(dict.fromkeys(as_bio(t) for t in config.tags)),  # what the outputs use
            "tag_scheme": config.tag_scheme,
            "signature": SIGNATURE,
            "warmup_inputs": {"text": [WARMUP_TEXT, WARMUP_TEXT * 4]},
            "int8_embeddings": args.int8_embeddings,
            "float16_weights": args.float16_weights,
            "calibration": calibration,
            **({"ensemble": [
                runs.member_record(d, tag_scheme=c.tag_scheme, encoder_layers=c.encoder_layers)
                for d, (_, c) in zip(run_dirs, members)
            ]} if len(members) > 1 else {}),
        },
    )


def _fit_calibration(model: keras.Model, config: Config, data_dir: Path) -> dict:
    """The CRF temperature fitted on the sentences the run held out (its sources' dev splits and
    ``config.held_out`` sentences of the others); 1 when it held none out."""
    _, held_out = read_corpus(CORPORA[config.corpus], data_dir, config.held_out, config.seed)
    sentences = [s for part in held_out.values() for s in part]
    if not sentences:
        print("the run held no sentences out: entity probabilities left uncalibrated (temperature 1)", flush=True)
        return {"temperature": 1.0, "fitted_on": "nothing: the run held no sentences out"}
    calibration = fit_temperature(model, config.tags, sentences, f"held out of {config.corpus} training ({', '.join(held_out)})")
    if "ece_after" in calibration:
        print(
            f"CRF temperature {calibration['temperature']}: held-out entity ECE {calibration['ece_before']:.4f} → "
            f"{calibration['ece_after']:.4f} ({calibration['fitted_on']})",
            flush=True,
        )
    return calibration
