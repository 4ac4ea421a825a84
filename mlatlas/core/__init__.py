"""What every topic uses: labs and claims, the runner, data, seeds and devices, figures,
checkpoints, training and statistics."""

from mlatlas.core.checkpoint import load_checkpoint, save_checkpoint
from mlatlas.core.claims import Check, Experiment, summary_line
from mlatlas.core.ensemble import Ensemble, make_ensemble
from mlatlas.core.figures import PALETTE, new_figure
from mlatlas.core.lab import (
    SCALES,
    Config,
    ConfigError,
    Lab,
    LabError,
    LabSpec,
    PerScale,
    lab,
    per_scale,
)
from mlatlas.core.record import RunRecord
from mlatlas.core.runtime import pick_device
from mlatlas.core.seeding import TEST_SEED, Replicate, fixed_generator, fixed_rng
from mlatlas.core.stats import bootstrap_ci, spearman
from mlatlas.core.train import FitResult, fit

__all__ = [
    "PALETTE",
    "SCALES",
    "TEST_SEED",
    "Check",
    "Config",
    "ConfigError",
    "Ensemble",
    "Experiment",
    "FitResult",
    "Lab",
    "LabError",
    "LabSpec",
    "PerScale",
    "Replicate",
    "RunRecord",
    "bootstrap_ci",
    "fit",
    "fixed_generator",
    "fixed_rng",
    "lab",
    "load_checkpoint",
    "make_ensemble",
    "new_figure",
    "per_scale",
    "pick_device",
    "save_checkpoint",
    "spearman",
    "summary_line",
]
