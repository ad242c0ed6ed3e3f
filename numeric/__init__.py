"""softmax-derive's runtime: softmax, log-softmax, log-sum-exp and cross entropy.

Generated from machine-checked derivations (see the ``derive`` package), verified
against mpmath to within 4 ULP in float64, and importable with NumPy alone::

    import numeric
    loss, grad = numeric.cross_entropy_with_grad(logits, labels)
"""
from importlib import metadata as _metadata

try:  # one version for the distribution: the installed metadata (pyproject.toml)
    __version__ = _metadata.version("softmax-derive")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from .api import (
                  binary_cross_entropy_with_logits,
                  binary_cross_entropy_with_logits_grad,
                  binary_cross_entropy_with_logits_with_grad,
                  cross_entropy,
                  cross_entropy_grad,
                  cross_entropy_with_grad,
                  linear_cross_entropy,
                  log_softmax,
                  logsumexp,
                  softmax,
)

__all__ = ["__version__", "softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
           "cross_entropy_with_grad", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_grad", "binary_cross_entropy_with_logits_with_grad",
           "linear_cross_entropy"]
