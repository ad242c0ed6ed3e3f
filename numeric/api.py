"""The public functions under the name they had before the package was split by
concern (``from numeric.api import cross_entropy`` keeps working); new code imports
them from :mod:`numeric` itself."""
from __future__ import annotations

from ._binary import (
                      binary_cross_entropy_with_logits,
                      binary_cross_entropy_with_logits_grad,
                      binary_cross_entropy_with_logits_with_grad,
)
from ._cross_entropy import cross_entropy, cross_entropy_grad, cross_entropy_with_grad
from ._linear import linear_cross_entropy
from ._softmax import log_softmax, logsumexp, softmax

__all__ = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_grad",
           "cross_entropy_with_grad", "binary_cross_entropy_with_logits",
           "binary_cross_entropy_with_logits_grad", "binary_cross_entropy_with_logits_with_grad",
           "linear_cross_entropy"]
