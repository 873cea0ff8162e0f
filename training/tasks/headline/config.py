"""What a headline model is and was trained with: its configuration, token ids and signatures."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.runs import RunConfig

TASK = "headline"
PAD, UNK, START, END = 0, 1, 2, 3  # token ids; characters follow from 4
START_KEY, END_KEY = -1, -2  # their keys in the integer vocabulary (decoded text is never negative)
NEVER_GENERATED = (PAD, UNK, START)
EXAMPLE = (
    "提出了一种新的保细节的变形算法,可以使网格模型进行尽量刚性的变形,以减少变形中几何细节的扭曲."
    "首先根据网格曲面局部细节的丰富程度,对原始网格进行聚类生成其简化网格;然后对简化网格进行变形."
)
SIGNATURE = {
    "inputs": {
        "text": "string [N], raw UTF-8 abstracts",
        "beam_width": "int32 [] (1 = greedy)",
        "max_length": "int32 [], most generated tokens",
        "length_penalty": "float32 [], GNMT alpha for ranking the beams (0 = plain log-probability)",
        "block_repeated_trigrams": "bool []",
    },
    "outputs": {
        "headlines": "string [N, beam_width], best first",
        "log_probs": "float32 [N, beam_width], sum of token log-probabilities",
        "scores": "float32 [N, beam_width], the ranking: log_probs / length penalty "
        "(+ reranker weight × log P(text | headline) in a version exported with a reranker)",
        "truncated": "bool [N], the abstract was longer than the model reads",
    },
}

NEXT_TOKEN_SIGNATURE = {
    "inputs": {"text": "string [N]", "prefix": "int32 [N, T], decoder input ids starting with the start token"},
    "outputs": {
        "log_probs": "float32 [N, T, V], next-token log-probabilities after each prefix position",
        "vocabulary": "string [V], the text of each token id ('' for the special tokens)",
    },
}


@dataclass
class Config(RunConfig):
    """Everything needed to rebuild the network: hyper-parameters plus the character vocabulary."""

    # "papers": CSL abstracts → titles; "papers_news": and LCSTS posts → summaries;
    # "papers_news_reports": and People's Daily texts → their headlines
    corpus: str = "papers"
    news_repeats: int = 1  # how many times each epoch goes over the news pairs
    report_repeats: int = 3  # and over the People's Daily pairs (300 of them)
    # Trained the other way, headline → text: how well a headline explains its text, which an
    # export uses to rerank the forward model's beam (a noisy channel).
    reverse: bool = False
    embedding_dim: int = 128
    encoder_units: int = 128  # per direction
    decoder_units: int = 256
    attention_heads: int = 4
    attention_key_dim: int = 32
    output_dim: int = 128
    dropout: float = 0.25
    label_smoothing: float = 0.0
    pointer: bool = True  # mix in a pointer (copy attention) distribution; False: the seed's prior alone
    max_source_chars: int = 256  # the abstract's first characters the encoder reads
    max_title_tokens: int = 48  # titles (and the end token) are cut to this while training
    # Which pairs were held out (preprocessor.read_corpus): selection chose on them, export fits
    # the domain check on them.
    held_out: int = 300
    seed: int = 13
    chars: list[int] = field(default_factory=list)  # code points, most frequent first

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 4
