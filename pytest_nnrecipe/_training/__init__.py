"""The recipe's training checks: loss at init, overfit one batch, loss decreases, the
input-independent baseline, parameters update, and the learning-rate schedule.

One module per check (``_init_loss``, ``_overfit``, ``_progress``, ``_params``,
``_schedule``) on two shared ones: ``_losses`` knows the standard losses (their best constant
prediction and their lowest achievable value) and ``_fit`` holds the argument checks and the
one short training loop every check runs on a copy of the model.
"""

from __future__ import annotations
