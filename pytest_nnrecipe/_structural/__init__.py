"""The structural checks ("use backprop to chart dependencies"): one driver, one declaration
per check.

- :mod:`._driver`: validation, model preparation, the runs, the record and the failure
  message, written once; a check declares what a unit is, which pairs are allowed, how a pair
  is named, its likely causes and its two ways of answering (:class:`._driver.Declaration`).
- :mod:`._verdict`: what one run found (the dependency matrix and what is allowed).
- :mod:`._batch_mixing` (``assert_no_batch_mixing``: samples) and :mod:`._causal`
  (``assert_causal``: steps): the declarations, with their gradient and perturbation passes.

The engine they run on (code words, backprop, perturbation, reductions) is
:mod:`pytest_nnrecipe._dependency`.
"""

from __future__ import annotations
