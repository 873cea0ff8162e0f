"""The tagger's network: character, bigram and jieba-lexicon features → BiLSTM (or ID-CNN) → CRF
emissions; a trained run loaded back; runs averaged into one tagger."""

from __future__ import annotations

from pathlib import Path

import keras

from training.data.lexicon import jieba_lexicon
from training.data.tags import tag_constraints
from training.layers import CRF, CharBigrams, EmojiFolding, TokenDropout
from training.layers.lexicon import LexiconFeatures
from training.runs import load_best
from training.tasks.ner.config import Config


def build_model(config: Config, name: str = "ner_tagger", lexicon: LexiconFeatures | None = None) -> keras.Model:
    """Code points ``[B, L]`` (0 = padding) → CRF emissions ``[B, L, num_tags]``.

    ``lexicon``: a lexicon-feature layer to use instead of a new one (the members of an
    ensemble share one, so the exported graph holds one copy of the word list).
    """
    inputs = keras.Input(shape=(None,), dtype="int32", name="codepoints")
    codepoints = EmojiFolding(name="emoji_folding")(inputs) if config.fold_emoji else inputs
    mask = keras.ops.not_equal(codepoints, 0)
    char_ids = keras.layers.IntegerLookup(vocabulary=config.chars, mask_token=0, name="char_lookup")(
        keras.ops.cast(codepoints, "int64")
    )
    bigram_ids = keras.layers.IntegerLookup(vocabulary=config.bigrams, mask_token=0, name="bigram_lookup")(
        CharBigrams(name="bigrams")(codepoints)
    )
    char_ids = TokenDropout(config.char_dropout, name="char_dropout")(char_ids)
    bigram_ids = TokenDropout(config.bigram_dropout, name="bigram_dropout")(bigram_ids)
    chars = keras.layers.Embedding(len(config.chars) + 2, config.char_dim, name="char_embedding")(char_ids)
    bigrams = keras.layers.Embedding(len(config.bigrams) + 2, config.bigram_dim, name="bigram_embedding")(bigram_ids)
    bigrams = keras.layers.Reshape((-1, 2 * config.bigram_dim))(bigrams)
    features = [chars, bigrams]
    if config.lexicon_max_word_length:
        if lexicon is None:
            lexicon = lexicon_layer(config)
        features.append(lexicon(codepoints))
    x = keras.layers.Concatenate()(features)
    x = keras.layers.Dropout(config.dropout)(x)
    if config.encoder == "bilstm":
        # Named so that weight paths do not depend on how many models this process built (warm starts match by path).
        for layer in range(config.encoder_layers):
            suffix = f"_{layer + 1}" if layer else ""
            if layer:
                x = keras.layers.Dropout(config.dropout, name=f"encoder_dropout{suffix}")(x)
            lstm = keras.layers.LSTM(config.hidden, return_sequences=True, name=f"lstm{suffix}")
            x = keras.layers.Bidirectional(lstm, name=f"encoder{suffix}")(x, mask=mask)
    else:
        x = _iterated_dilated_cnn(x, mask, config.hidden)
    x = keras.layers.Dropout(config.dropout)(x)
    emissions = keras.layers.Dense(len(config.tags), name="emissions")(x)
    constraints = tag_constraints(config.tags) if config.constrained_crf else {}
    emissions = CRF(len(config.tags), name="crf", **constraints)(emissions)
    return keras.Model(inputs, emissions, name=name)


def lexicon_layer(config: Config) -> LexiconFeatures:
    return LexiconFeatures(jieba_lexicon(config.lexicon_max_word_length), config.lexicon_max_word_length, name="lexicon")


def load_tagger(run_dir: Path, name: str = "ner_tagger", lexicon: LexiconFeatures | None = None) -> tuple[keras.Model, Config]:
    """A trained run's tagger with its best (held-out) weights, and its config."""
    config = Config.of_run(run_dir)
    return load_best(build_model(config, name, lexicon), run_dir), config


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """Trained taggers with the same tags → one tagger whose emissions and CRF scores are the
    members' means (a product of experts: Viterbi runs once, over the averaged potentials)."""
    codepoints = keras.Input(shape=(None,), dtype="int32", name="codepoints")
    emissions = keras.layers.Average(name="mean_emissions")([member(codepoints) for member in members])
    crf = CRF.from_config({**members[0].get_layer("crf").get_config(), "name": "crf"})
    ensemble = keras.Model(codepoints, crf(emissions), name="ner_ensemble")
    for weight, *member_weights in zip(crf.weights, *(m.get_layer("crf").weights for m in members)):
        weight.assign(keras.ops.mean(keras.ops.stack([w.value for w in member_weights]), axis=0))
    return ensemble


def _iterated_dilated_cnn(x, mask, filters: int, dilations=(1, 1, 2), blocks: int = 4):
    """ID-CNN (Strubell et al., 2017): one dilated block applied ``blocks`` times with shared weights.

    Padded positions are zeroed after every convolution so they never leak into real ones.
    """
    keep = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    x = keras.layers.Dense(filters, name="idcnn_input")(x) * keep
    convs = [
        keras.layers.Conv1D(filters, 3, dilation_rate=d, padding="same", activation="relu", name=f"idcnn_conv{i}")
        for i, d in enumerate(dilations)
    ]
    outputs = []
    for _ in range(blocks):
        for conv in convs:
            x = conv(x) * keep
        outputs.append(x)
    return keras.layers.Concatenate(name="encoder")(outputs)
