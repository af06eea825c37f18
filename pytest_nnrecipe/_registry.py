"""The one list of checks: for each, where it lives, its result types, the recipe tip it
covers, its step in ``check_recipe`` and the pictures its records give.

Everything that lists checks reads them from here: the package's lazy exports and
``__all__``, the plugin's fixtures (one per check), ``check_recipe``'s steps and table, the
``--nn-report`` rows and the ``--nn-artifacts`` pictures. Adding a check is its module plus
one entry in :data:`CHECKS`.

Standard library only, and nothing here imports a check: the plugin reads it at load time.
"""

from __future__ import annotations

import dataclasses

# The recipe's testable tips, in its order: the rows of the --nn-report table. Tips without a
# check are covered by the session itself (pictures written, Hypothesis tests run).
DATA = "Become one with the data"
SEED = "Fix random seed"
VISUALIZE_BATCH = "Visualize just before the net"
INIT = "Verify loss @ init / Init well"
BASELINE = "Input-independent baseline"
OVERFIT = "Overfit one batch"
DECREASING = "Verify decreasing training loss"
VISUALIZE_DYNAMICS = "Visualize prediction dynamics"
DEPENDENCIES = "Use backprop to chart dependencies"
GENERALIZE = "Generalize a special case"
LR_DECAY = "Don't trust LR decay defaults"
TIPS = (
    DATA,
    SEED,
    VISUALIZE_BATCH,
    INIT,
    BASELINE,
    OVERFIT,
    DECREASING,
    VISUALIZE_DYNAMICS,
    DEPENDENCIES,
    GENERALIZE,
    LR_DECAY,
)

# The PNG pictures a check's records give (--nn-artifacts), by what they show.
DEPENDENCIES_PICTURE = "dependencies"  # the dependency matrix
LOSS_PICTURE = "loss"  # the loss curve and the prediction dynamics
LR_PICTURE = "lr"  # the learning rate over the steps
CLASSES_PICTURE = "classes"  # the class histogram
BATCH_PICTURE = "batch"  # the batch that entered the model
FIRST_LAYER_PICTURE = "first-layer"  # the first conv layer's filters
DIFFERENCE_PICTURE = "difference"  # an invariance check's differences against its threshold
TRAINING_PICTURES = (LOSS_PICTURE, BATCH_PICTURE, FIRST_LAYER_PICTURE)


@dataclasses.dataclass(frozen=True)
class RecipeStep:
    """A check's step in ``check_recipe``.

    ``name``: for ``checks=`` and ``options=``; ``number``: its row in the table (the recipe's
    order); ``label``: the table's step column; ``call``: how the recipe calls the check
    (``"training"``: model, inputs, targets, loss; ``"structural"``: model, inputs;
    ``"schedule"``: an optimizer and scheduler of a fresh model; ``"inputs"``: model, inputs,
    output; ``"optimizer"``: a fresh model and the optimizer the factory builds on it);
    ``needs``: the argument without which it is skipped (``"time_dim"``, ``"scheduler"``,
    ``"optimizer"``, ``"batch"``: 2 samples, ``"mask"``: dict inputs with a padded
    ``attention_mask``).
    """

    name: str
    number: int
    label: str
    call: str
    needs: str | None = None


@dataclasses.dataclass(frozen=True)
class Check:
    """One public check.

    ``module``: where it is defined (relative to the package); ``results``: the public types
    it returns, exported from the package and defined in ``results_module`` (the module of
    every result type, ``_results``, unless said otherwise); ``tip``: the recipe tip it
    covers in ``--nn-report``; ``group``: a report group of its own for checks that are not
    about one model; ``step``: its step in ``check_recipe``; ``pictures``: the PNG pictures
    its records give; ``dynamics``: its loss picture shows prediction dynamics (covers
    "Visualize prediction dynamics"); ``fixture``: the plugin offers it as a fixture.
    """

    name: str
    module: str
    results: tuple[str, ...] = ()
    tip: str | None = None
    group: str | None = None
    step: RecipeStep | None = None
    pictures: tuple[str, ...] = ()
    dynamics: bool = False
    fixture: bool = True
    results_module: str = "._results"


def _data(name: str, module: str, *results: str, pictures: tuple[str, ...] = ()) -> Check:
    """A data check: covers "become one with the data", reported in the data checks' group."""
    return Check(name, f"._data.{module}", results, DATA, "data checks", pictures=pictures)


def _training(
    name: str,
    module: str,
    result: str,
    tip: str,
    step: RecipeStep,
    *,
    dynamics: bool = False,
    also: tuple[str, ...] = (),
) -> Check:
    """A training check: a step of the recipe, pictures of its run; ``also``: result types
    it shares with the other training checks (listed once, here)."""
    return Check(
        name,
        f"._training.{module}",
        (result, *also),
        tip,
        step=step,
        pictures=TRAINING_PICTURES,
        dynamics=dynamics,
    )


def _structural(name: str, module: str, result: str, step: RecipeStep) -> Check:
    """A structural check: charts dependencies, pictures of its matrix and batch."""
    return Check(
        name, f"._structural.{module}", (result,), DEPENDENCIES, step=step, pictures=STRUCTURAL
    )


def _invariance(name: str) -> Check:
    """An invariance check: the model's outputs under a transform of its inputs, compared
    within its measured rounding error. It covers "use backprop to chart dependencies": what
    the output must not depend on (a set's order, memory layout, the amount of padding);
    "generalize a special case" stays the Hypothesis tests' (the session covers it)."""
    pictures = (DIFFERENCE_PICTURE, BATCH_PICTURE)
    return Check(name, "._invariance", ("Invariance",), DEPENDENCIES, pictures=pictures)


STRUCTURAL = (DEPENDENCIES_PICTURE, BATCH_PICTURE)
_TRAINING = "training"

#: Every public check by name, in the recipe's order.
CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        _data("assert_no_duplicates", "_duplicates", "Duplicates"),
        _data("assert_disjoint", "_duplicates", "Overlap"),
        _data("assert_consistent_labels", "_duplicates", "LabelConflicts"),
        _data("assert_finite_data", "_values", "ValueReport"),
        _data("assert_balanced", "_balance", "Balance", pictures=(CLASSES_PICTURE,)),
        _data("assert_normalized", "_normalization", "ChannelStats"),
        _data("assert_augmentation_consistent", "_augmentation", "AugmentationReport"),
        _data("describe_data", "_summary", "DataSummary", "FieldSummary"),
        Check(  # before any training: one forward (and backward) per input at most
            "assert_inputs_used",
            "._structural._inputs_used",
            ("InputsUsed",),
            DEPENDENCIES,
            step=RecipeStep("inputs_used", 1, "every input used", "inputs"),
        ),
        Check(  # no forward at all: the optimizer's param groups against the model
            "assert_optimizer_covers",
            "._training._optimizer",
            ("OptimizerCoverage",),
            DECREASING,
            step=RecipeStep(
                "optimizer", 2, "optimizer holds every param", "optimizer", "optimizer"
            ),
        ),
        Check(  # a training check without pictures: its message shows where the runs part
            "assert_deterministic",
            "._training._determinism",
            ("Determinism",),
            SEED,
            step=RecipeStep("deterministic", 3, "fix random seed", _TRAINING),
        ),
        _training(
            "assert_init_loss",
            "_init_loss",
            "InitLoss",
            INIT,
            RecipeStep("init_loss", 4, "verify loss @ init", _TRAINING),
            also=("Closeness",),
        ),
        _training(
            "assert_beats_input_independent_baseline",
            "_progress",
            "BaselineComparison",
            BASELINE,
            RecipeStep("baseline", 7, "input-indep. baseline", _TRAINING),
            dynamics=True,
        ),
        _training(
            "assert_can_overfit",
            "_overfit",
            "Overfit",
            OVERFIT,
            RecipeStep("overfit", 8, "overfit one batch", _TRAINING),
            dynamics=True,
        ),
        _training(
            "assert_loss_decreases",
            "_progress",
            "LossDecrease",
            DECREASING,
            RecipeStep("loss_decreases", 6, "training loss decreases", _TRAINING),
            dynamics=True,
        ),
        _training(
            "assert_params_update",
            "_params",
            "ParamsUpdate",
            DECREASING,
            RecipeStep("params_update", 5, "every parameter learns", _TRAINING),
        ),
        _structural(
            "assert_no_batch_mixing",
            "_batch_mixing",
            "BatchMixingResult",
            RecipeStep("batch_mixing", 9, "batch independence", "structural", "batch"),
        ),
        _structural(
            "assert_causal",
            "_causal",
            "CausalResult",
            RecipeStep("causal", 10, "causality", "structural", "time_dim"),
        ),
        _structural(
            "assert_padding_ignored",
            "_padding",
            "PaddingResult",
            RecipeStep("padding", 11, "padding ignored", "structural", "mask"),
        ),
        _invariance("assert_invariant"),
        _invariance("assert_equivariant"),
        _invariance("assert_permutation_invariant"),
        _invariance("assert_permutation_equivariant"),
        _invariance("assert_layout_invariant"),
        _invariance("assert_padding_invariant"),
        Check(
            "assert_lr_schedule",
            "._training._schedule",
            ("LrSchedule",),
            LR_DECAY,
            "learning-rate schedules",
            RecipeStep("lr_schedule", 12, "LR decay schedule", "schedule", "scheduler"),
            (LR_PICTURE,),
        ),
        Check(
            "check_recipe", "._recipe", ("RecipeResult", "StepResult"), results_module="._recipe"
        ),
    )
}


def recipe_steps() -> list[tuple[Check, RecipeStep]]:
    """The checks that are steps of ``check_recipe``, in the table's order."""
    steps = [(c, c.step) for c in CHECKS.values() if c.step is not None]
    return sorted(steps, key=lambda pair: pair[1].number)


#: Public names that belong to no one check: name -> module that defines it.
OTHER_EXPORTS = {"PrecisionWarning": "._messages"}


def exports() -> dict[str, str]:
    """Public name -> module that defines it: every check, its result types, and the others."""
    out = dict(OTHER_EXPORTS)
    for check in CHECKS.values():
        out[check.name] = check.module
        out.update(dict.fromkeys(check.results, check.results_module))
    return out
