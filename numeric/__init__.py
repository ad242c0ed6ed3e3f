"""softmax-derive's runtime: softmax, log-softmax, log-sum-exp and cross entropy.

Generated from machine-checked derivations (see the ``derive`` package), verified
against mpmath to within 4 ULP in float64, and importable with NumPy alone::

    import numeric
    loss, grad = numeric.cross_entropy_with_grad(logits, labels)

Conventions shared by every function:

* The class axis is ``axis`` (default -1). Results are new arrays of the logits'
  floating dtype (float16/float32/float64 in, the same out; integers and booleans
  become float64). Everything is computed in float64 and rounded once.
* Inputs are never modified. No RuntimeWarning is emitted for finite input.
* NaN in a row makes that row's outputs NaN; other rows are untouched.
* A -inf logit is a masked class: its probability is 0 and nothing becomes NaN. The
  loss is +inf only when the true class is masked (or, for probability targets, a
  masked class has a positive target). A row whose logits are all -inf has no
  possible class: softmax 0, log_softmax -inf, logsumexp -inf, loss +inf and
  gradient S - y = -y.
* +inf logits are the limit of logits growing together without bound: the +inf
  classes share the probability equally (1/n each for n of them), the others get 0;
  logsumexp is +inf, log_softmax is -log n at the +inf classes and -inf elsewhere.

The modules, by concern: ``_softmax`` (softmax, log_softmax, logsumexp),
``_cross_entropy`` (cross entropy and its options), ``_binary`` (binary cross
entropy), ``_linear`` (the FC layer and the loss, over ``_tiles``), ``_validation``
(input checks and their messages), ``_rows`` (kernels run on rows, non-finite rows),
``_exact`` (error-free transformations), ``_blocks`` (cache blocks and threads) and
the generated ``_kernels``. ``numeric.api`` re-exports the public functions.
"""
from importlib import metadata as _metadata

try:  # one version for the distribution: the installed metadata (pyproject.toml)
    __version__ = _metadata.version("softmax-derive")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from ._binary import (
                      binary_cross_entropy_with_logits,
                      binary_cross_entropy_with_logits_grad,
                      binary_cross_entropy_with_logits_with_grad,
)
from ._cross_entropy import cross_entropy, cross_entropy_grad, cross_entropy_with_grad
from ._linear import linear_cross_entropy
from ._softmax import log_softmax, logsumexp, softmax

__all__ = ["__version__", "softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
           "cross_entropy_with_grad", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_grad", "binary_cross_entropy_with_logits_with_grad",
           "linear_cross_entropy"]

from . import api  # noqa: E402,F401 -- ``numeric.api`` stays an attribute, as before the split
