"""Small models and batches for the training-check examples, each with a switch for one bug.

Every model here is correct with its default arguments; the keyword arguments switch on the
bugs of the recipe ("neural net training fails silently") one at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    """A two-layer MLP classifier. ``softmax=True`` adds the classic double softmax before
    CrossEntropyLoss; ``dropout`` sets the dropout rate; ``input_scale=0`` makes the model
    ignore its input."""

    def __init__(
        self,
        n_in: int = 8,
        n_classes: int = 4,
        hidden: int = 32,
        *,
        softmax: bool = False,
        dropout: float = 0.0,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)
        self.softmax = softmax
        self.input_scale = input_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.body(x * self.input_scale))
        return logits.softmax(-1) if self.softmax else logits


class Regressor(nn.Module):
    """A two-layer MLP regressor. ``relu_head=True`` puts a ReLU on the output (predictions
    can never go negative)."""

    def __init__(
        self, n_in: int = 8, n_out: int = 1, hidden: int = 32, *, relu_head: bool = False
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_out)
        self.relu_head = relu_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return torch.relu(out) if self.relu_head else out


class TwoBranch(nn.Module):
    """Two branches summed. ``detach=True`` cuts the second branch off the graph;
    ``unused=True`` defines a layer that forward never calls."""

    def __init__(self, *, detach: bool = False, unused: bool = False) -> None:
        super().__init__()
        self.left = nn.Linear(8, 4)
        self.right = nn.Linear(8, 4)
        self.extra = nn.Linear(4, 4) if unused else None
        self.detach = detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        right = self.right(x)
        return self.left(x) + (right.detach() if self.detach else right)


def classification_batch(n: int = 16, n_in: int = 8, n_classes: int = 4):
    """Random inputs with balanced labels (memorisable only by a model that reads the input)."""
    return torch.randn(n, n_in), torch.arange(n) % n_classes


def binary_batch(n: int = 256, n_in: int = 8, positive_rate: float = 0.1):
    """An imbalanced binary task: about ``positive_rate`` positives, labels as floats (n, 1)."""
    x = torch.randn(n, n_in)
    y = (torch.arange(n) % round(1 / positive_rate) == 0).float().unsqueeze(1)
    return x, y


def regression_batch(n: int = 16, n_in: int = 8, mean: float = 0.0):
    """Random inputs with standard-normal targets around ``mean``, shape (n, 1)."""
    return torch.randn(n, n_in), mean + torch.randn(n, 1)


def with_outliers(y: torch.Tensor, value: float = 10.0, count: int = 2) -> torch.Tensor:
    """``y`` with its last ``count`` targets replaced by an outlier ``value``."""
    y = y.clone()
    y[-count:] = value
    return y


def clamped_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The bug: the *loss* clipped instead of the gradients (outliers give no gradient)."""
    return F.mse_loss(output, target, reduction="none").clamp(max=1.0).mean()


def init_bias_log_prior(linear: nn.Linear, labels: torch.Tensor, n_classes: int) -> None:
    """ "Init well": the final bias as the log prior of the classes."""
    prior = torch.bincount(labels, minlength=n_classes).float() / len(labels)
    with torch.no_grad():
        linear.bias.copy_(prior.log())


def init_bias_log_odds(linear: nn.Linear, labels: torch.Tensor) -> None:
    """ "Init well" for a binary task: the final bias as log(p / (1 - p))."""
    p = float(labels.mean())
    with torch.no_grad():
        linear.bias.fill_(math.log(p / (1 - p)))


def init_bias_mean(linear: nn.Linear, targets: torch.Tensor) -> None:
    """ "Init well" for regression: the final bias as the target mean."""
    with torch.no_grad():
        linear.bias.copy_(targets.mean(0))
