"""What every topic uses: labs and claims, the runner, data, seeds and devices, figures,
checkpoints and statistics."""

from mlatlas.core.checkpoint import load_checkpoint, save_checkpoint
from mlatlas.core.figures import PALETTE, new_figure
from mlatlas.core.lab import SCALES, Claim, Config, ConfigError, Lab, LabError, LabSpec, lab
from mlatlas.core.runtime import pick_device, seed_everything
from mlatlas.core.stats import bootstrap_ci, geometric_mean_ci, mean_ci, spearman

__all__ = [
    "PALETTE",
    "SCALES",
    "Claim",
    "Config",
    "ConfigError",
    "Lab",
    "LabError",
    "LabSpec",
    "bootstrap_ci",
    "geometric_mean_ci",
    "lab",
    "load_checkpoint",
    "mean_ci",
    "new_figure",
    "pick_device",
    "save_checkpoint",
    "seed_everything",
    "spearman",
]
