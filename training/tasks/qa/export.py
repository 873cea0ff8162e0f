"""``python -m training qa export``: one reader (or several averaged) as a SavedModel with its
decoding and calibration fitted on dev's calibration half."""

from __future__ import annotations

import argparse
from pathlib import Path

import tensorflow as tf

from app.tasks.qa.preprocessing import model_inputs, pad_tokens, segment
from training import publishing, runs
from training.cli import export_version
from training.tasks.qa.backbone import averaged_reader
from training.tasks.qa.calibrate import decoded, fit_calibration, fit_nested_ratio
from training.tasks.qa.config import DATA_SOURCE, EXAMPLE_PASSAGES, EXAMPLE_QUESTION, SIGNATURE, TASK, Config
from training.tasks.qa.evaluate import evaluate_saved_model, headline_figures
from training.tasks.qa.grading import dev_answers
from training.tasks.qa.head import make_reader, preprocessing_of, saved_model_predictor


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    with publishing.float16_weights(args.float16_weights):
        model, config = averaged_reader(run_dirs)
    if args.int8_embeddings:
        publishing.quantize_embeddings(model)
    read = make_reader(model, config)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.string, name="question_tokens"),
            tf.TensorSpec([None, None], tf.string, name="passage_tokens"),
        ]
    )
    def serve(question_tokens, passage_tokens):
        return read(model_inputs(question_tokens, passage_tokens))

    # Filled by measure() before export_version writes the manifest; empty: uncalibrated, best span as is.
    calibration: dict = {}
    decoding: dict = {}

    def measure(staged: Path) -> dict:
        predict = saved_model_predictor(staged)
        dev = dev_answers(predict, Path(args.data_dir), config)
        config.nested_answer_ratio, _ = fit_nested_ratio(dev)
        decoding["nested_answer_ratio"] = config.nested_answer_ratio
        dev = decoded(dev, config.nested_answer_ratio)
        calibration.update(fit_calibration(dev))
        return evaluate_saved_model(predict, Path(args.data_dir), config, calibration, dev_with_answers=dev)

    export_version(
        args,
        task=TASK,
        model=model,
        serve=serve,
        evaluate=measure,
        headline=headline_figures,
        data_source=DATA_SOURCE,
        extra={
            "signature": SIGNATURE,
            "calibration": calibration,
            "decoding": decoding,
            "preprocessing": preprocessing_of(config).model_dump(),
            # Signature inputs: the example question over both example passages.
            "warmup_inputs": {
                "question_tokens": [segment(EXAMPLE_QUESTION)] * 2,
                "passage_tokens": [[t.decode() for t in row] for row in pad_tokens([segment(p) for p in EXAMPLE_PASSAGES])],
            },
            "int8_embeddings": args.int8_embeddings,
            "float16_weights": args.float16_weights,
            **({"ensemble": [
                runs.member_record(d, question_attention=Config.of_run(d).question_attention) for d in run_dirs
            ]} if len(run_dirs) > 1 else {}),
        },
    )
