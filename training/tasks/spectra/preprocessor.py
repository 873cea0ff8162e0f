"""What the classifier learns from: simulated splits (cached), the mixup ``tf.data`` pipeline, and
a batched driver over many spectra."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from app.tasks.spectra.spec import CLASSES
from training.augment import mixup
from training.data import spectra as spectra_simulator
from training.data.spectra import Templates, simulate
from training.tasks.spectra.config import SPLIT_SEEDS


def load_split(data_dir: Path, cache_dir: Path, split: str, n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulated spectra of one split, cached as ``.npz`` (the simulator is deterministic by seed);
    the cache's name carries a digest of the simulator's source, so a changed simulator is not
    read from an old cache."""
    simulator = hashlib.sha1(Path(spectra_simulator.__file__).read_bytes()).hexdigest()[:10]
    cache = cache_dir / f"{split}-{n_per_class}-{simulator}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["flux"], data["labels"]
    templates = Templates.load(data_dir / "templates", split)
    flux, labels = simulate(templates, n_per_class, SPLIT_SEEDS[split])
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, flux=flux, labels=labels)
    return flux, labels


def training_dataset(flux: np.ndarray, labels: np.ndarray, batch_size: int, alpha: float, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((flux, tf.one_hot(labels, len(CLASSES))))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if alpha > 0:
        ds = ds.map(lambda x, y: mixup(x, y, alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict_in_batches(predict, flux: np.ndarray, batch_size: int = 256, desc: str | None = None):
    """``predict`` over ``flux`` in batches: one array, or a dict of arrays for a dict-valued ``predict``."""
    batches = range(0, len(flux), batch_size)
    out = [predict(flux[i : i + batch_size]) for i in tqdm(batches, desc=desc, unit="batch", file=sys.stderr, disable=desc is None)]
    if isinstance(out[0], dict):
        return {key: np.concatenate([np.asarray(o[key]) for o in out]) for key in out[0]}
    return np.concatenate([np.asarray(o) for o in out])
