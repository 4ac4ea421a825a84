"""Labs of topic 4, one file each, in this order:

condition_number: GD and heavy ball on quadratics, rates and steps against kappa (checks).
saddle_points: exact GD stalls on a saddle's stable manifold; noisy GD escapes in log(1/sigma).
adaptive_rates: SGD vs Adam on badly scaled features, lrs chosen on a validation split.
adam_l2_vs_adamw: how much decay each weight feels under Adam + L2 and under AdamW.
schedules: the LR range test, then constant vs warmup + cosine vs one-cycle at equal budget.
convergence: SGD's noise floor under constant steps vs the 1/t rate of eta_t = 1/(mu (t + t0)).
"""

from mlatlas.foundations.optim.labs import (  # noqa: F401, I001  (registers the labs, in order)
    condition_number,
    saddle_points,
    adaptive_rates,
    adam_l2_vs_adamw,
    schedules,
    convergence,
)
