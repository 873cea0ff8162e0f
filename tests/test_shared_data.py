"""Checks on the real corpora; skipped when ``../shared/data`` is absent (e.g. a bare clone)."""

from __future__ import annotations

import pytest

from tests.conftest import shared_data
from training.data.ner import read_bio, read_cluener

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_msra_training_file_has_no_test_sentences():
    root = shared_data("ner")
    train = read_bio(root / "msra" / "train_pdnorm_minus_pd_devtest.txt")
    assert len(train) == 39_410
    train_texts = {s.text for s in train}
    for test_file in ("msra/test.txt", "peoples_daily/example.test"):
        test = read_bio(root / test_file)
        # The People's Daily sentences were removed from the training file; MSRA test never overlapped.
        assert not train_texts & {s.text for s in test}, test_file


def test_cluener_reads_all_types():
    root = shared_data("ner")
    labels = {s.label for sentence in read_cluener(root / "cluener2020" / "dev.json") for s in sentence.spans}
    assert len(labels) == 10
