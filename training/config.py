"""A training run's settings and their defaults (`TrainConfig`), apart from the code that trains.

Standard library and charlm only: the evaluation and the recipe read the defaults without importing the
trainer (training.train imports training.heldout, which training.evaluate shares; neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from charlm import Settings

# The parts of the config that define the model; a resumed run must match them.
ARCH = ("cell", "layers", "units", "embedding")
# Generation defaults a bundle carries; a replaced bundle's values are kept unless given.
GENERATION = ("temperature", "top_p", "top_k", "min_length", "max_length", "end_boost", "candidates", "real_words")
# What a new bundle takes from the one it replaces unless given (carry_over).
CARRIED = ("title", "aliases", "description", *GENERATION)
CHECKPOINT, CANDIDATE = "checkpoint", "bundle"  # the run folder's subfolders


@dataclass
class TrainConfig:
    """Everything that decides a run; stored in the checkpoint and the bundle's manifest."""

    culture: str
    corpus: list[str] = field(default_factory=list)
    models_dir: str = "models"
    run_dir: str = ""
    checkpoint: str = ""  # the checkpoint folder, if not RUN_DIR/checkpoint
    epochs: int = 30
    seed: int = 0
    split_seed: int = 0
    cell: str = "lstm"
    layers: int = 2
    units: int = 256
    embedding: int = 64
    dropout: float = 0.2
    window: int = 128
    stride: int = 64
    batch_size: int = 64
    lr: float = 3e-3
    min_lr: float = 1e-4
    clipnorm: float = 1.0
    val_share: float = 0.08
    patience: int = 4
    lr_patience: int = 1
    steps_per_epoch: int = 0
    sample_every: int = 5
    init_from: str = ""
    title: str = ""
    aliases: list[str] = field(default_factory=list)
    description: str = ""
    temperature: float = 0.5
    top_p: float = 0.95
    top_k: int = 0
    min_length: int = 60
    max_length: int = 400
    end_boost: float = 3.0
    candidates: int = 1
    real_words: bool = False
    export: bool = True

    def generation(self) -> Settings:
        return Settings(**{k: getattr(self, k) for k in GENERATION})

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.checkpoint) if self.checkpoint else Path(self.run_dir) / CHECKPOINT

    @property
    def candidate_dir(self) -> Path:
        return Path(self.run_dir) / CANDIDATE

    @property
    def install_dir(self) -> Path:
        return Path(self.models_dir) / self.culture
