"""What a QA reader is and was trained with: its configuration, the data it names, its signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app import model_store
from training.runs import RunConfig

TASK = "qa"
TRAIN, SELECT, TESTS = "cmrc2018/cmrc2018_train.json", "cmrc2018/cmrc2018_trial.json", "cmrc2018/cmrc2018_dev.json"
WEBQA = "webqa_sample/test_file_example.json.gz"
DATA_SOURCE = (
    "CMRC 2018 (train for training, trial for model selection, dev for the reported metrics) and the "
    "Baidu WebQA evaluation sample (200 questions × 20 passages); see ../shared/data/README.md"
)
EXAMPLE_QUESTION = "中国的首都是哪里？"
EXAMPLE_PASSAGES = ["北京是中华人民共和国的首都，也是全国的政治中心。", "上海是中国最大的经济中心。"]
SIGNATURE = {
    "inputs": {
        "question_tokens": "string [N, Wq], jieba tokens of the question, '' as padding",
        "passage_tokens": "string [N, Wp], jieba tokens of one passage window, '' as padding",
    },
    "outputs": {
        "start": "int32 [N, K], code point offset in the window",
        "end": "int32 [N, K], exclusive",
        "score": "float32 [N, K], P(start)·P(end), best first",
    },
}


@dataclass
class Config(RunConfig):
    """Everything needed to rebuild the network: hyper-parameters plus vocabularies."""

    hidden: int = 128
    word_dim: int = 64
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 1, 1, 1])
    heads: int = 4
    dropout: float = 0.1
    window_chars: int = 256
    window_stride: int = 128
    max_question_chars: int = 64
    max_answer_chars: int = 64
    top_k: int = 5
    span_loss: str = "sigmoid"  # a key of SPAN_LOSSES; older runs were all sigmoid
    question_attention: bool = False  # passage-to-question attention (older runs: the pooled question only)
    nested_answer_ratio: float | None = None  # decoding (prefer_nested), fitted at export; None: the best span as is
    chars: list[int] = field(default_factory=list)
    words: list[str] = field(default_factory=list)



def config_of_export(version_dir: Path) -> Config:
    """The preprocessing settings an exported reader was trained with, and its decoding (from its manifest)."""
    manifest = model_store.read_manifest(version_dir)
    return Config(**manifest.get("preprocessing", {}), **manifest.get("decoding", {}))
