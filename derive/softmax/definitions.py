"""The one place where the formulas are written.

Everything else in softmax-derive -- the proofs, the generated NumPy code, the
high-precision reference used for verification, the reports -- is built from the
expressions in this module.

The number of classes ``T`` and the number of features ``N`` are symbols, so every
identity proved from these definitions holds for every T at once. Vectors are
``IndexedBase`` objects indexed from 1 to T (classes) or 1 to N (features):

* fully connected layer  a_i = sum_n W_in x_n + b_i       (W is T x N)
* partition function     Z   = sum_k e^{a_k}
* softmax                S_j = e^{a_j} / Z
* softmax loss           L   = -sum_j y_j log S_j
* cross entropy          H(p, q) = -sum_j p_j log q_j

Assumptions are data (instances of :class:`Assumption`), not prose: the proof engine
uses each one twice -- as a sound symbolic rewrite and as a sampler that produces
concrete values satisfying it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import mpmath
import numpy as np
import sympy as sp
from mpmath.libmp import from_float, from_int
from sympy import Indexed, IndexedBase, KroneckerDelta, Sum, exp, log

from .. import functions, notation, symbols
from ..notation import LIBRARY, Notation
from ..symbols import CLASSES, FEATURES, Assumption, Distinct, i, j, k, l, n, q, r, s  # noqa: E741

# --------------------------------------------------------------------------- symbols
T = CLASSES  #: number of classes
B = sp.Symbol("B", integer=True, positive=True)  #: batch size
N = FEATURES  #: number of features

# index symbols: free ones (i, j, l, c, k, p, q) and summation dummies (n, r, s); the
# machinery's notation table names all but the true class c and the row p of W
c, p = sp.symbols("c p", integer=True, positive=True)
beta = sp.Symbol("beta", integer=True, positive=True)  #: a sample of the batch

a = IndexedBase("a", real=True)  #: logits, length T
y = IndexedBase("y", real=True)  #: label (one-hot or probability vector), length T
P = IndexedBase("p", real=True)  #: a probability vector (first argument of H)
Qv = IndexedBase("q", real=True)  #: a probability vector (second argument of H)
x = IndexedBase("x", real=True)  #: features, length N
W = IndexedBase("W", real=True)  #: weights, T x N
b = IndexedBase("b", real=True)  #: biases, length T
v = IndexedBase("v", real=True)  #: a direction in logit space, length T
X = IndexedBase("X", real=True)  #: a batch of features, B x N
Ab = IndexedBase("A", real=True)  #: a batch of logits, B x T
rho = IndexedBase("rho", real=True)  #: per-sample weights of a reduction: w_c, 0 if ignored
Yb = IndexedBase("Y", real=True)  #: a batch of labels, B x T
u = IndexedBase("u", real=True)  #: per-class target weights u_j = w_j y_j (any non-negative)
w = IndexedBase("w", real=True)  #: class weights
bw = IndexedBase("bw", real=True)  #: the weights b of logsumexp(a, b=b), any sign (SciPy's b=)
eps = sp.Symbol("epsilon", real=True)  #: label smoothing
z = sp.Symbol("z", real=True)  #: a binary logit
yb = sp.Symbol("y_b", real=True)  #: a binary target in [0, 1]
pw = sp.Symbol("p_w", positive=True)  #: the positive-class weight of the binary loss
zp = sp.Symbol("zeta", positive=True)  #: a positive number (a case of the stable softplus)
t = sp.Symbol("t", real=True)  #: a scalar shift
m = sp.Symbol("m", real=True)  #: an arbitrary real (the shift of the stable forms)
delta = sp.Symbol("delta", positive=True)  #: a positive gap between two logits

#: every index symbol that may appear free in a derivation, with the range it lives in
INDEX_RANGES = {i: T, j: T, l: T, c: T, k: T, p: T, q: N, beta: B}

#: the built-in content's notation (its catalogue carries it): these index ranges, the
#: instance class below, the kernels' arrays (:mod:`derive.softmax.notation`)
NOTATION = Notation("softmax")
for _index, _size in INDEX_RANGES.items():
    NOTATION.declare_index(_index, _size)

Logits = Union[IndexedBase, Callable[[sp.Expr], sp.Expr]]


def at(vec: Logits, idx: sp.Expr) -> sp.Expr:
    """Component ``idx`` of a vector given as an IndexedBase or as a function."""
    return vec[idx] if isinstance(vec, IndexedBase) else vec(idx)


# --------------------------------------------------------------------------- formulas
def fc_logit(row: sp.Expr) -> sp.Expr:
    """a_row = sum_n W_{row,n} x_n + b_row: one output of the fully connected layer."""
    return Sum(W[row, n] * x[n], (n, 1, N)) + b[row]


def batch_logit(sample: sp.Expr, row: sp.Expr) -> sp.Expr:
    """a_{sample,row} = sum_n W_{row,n} X_{sample,n} + b_row: the FC layer on a batch."""
    return Sum(W[row, n] * X[sample, n], (n, 1, N)) + b[row]


def partition(a_: Logits = a) -> sp.Expr:
    """Z = sum_k e^{a_k}."""
    return Sum(exp(at(a_, r)), (r, 1, T))


def softmax(idx: sp.Expr, a_: Logits = a) -> sp.Expr:
    """S_idx = e^{a_idx} / sum_k e^{a_k}."""
    return exp(at(a_, idx)) / partition(a_)


def logsumexp(a_: Logits = a) -> sp.Expr:
    """log sum_k e^{a_k}."""
    return log(partition(a_))


def weighted_partition(b_: Logits = bw, a_: Logits = a) -> sp.Expr:
    """sum_k b_k e^{a_k}: the partition function with weights b of any sign."""
    return Sum(at(b_, r) * exp(at(a_, r)), (r, 1, T))


def weighted_logsumexp(b_: Logits = bw, a_: Logits = a) -> sp.Expr:
    """log |sum_k b_k e^{a_k}| (SciPy's logsumexp(a, b=b); its sign is returned apart)."""
    return log(sp.Abs(weighted_partition(b_, a_)))


def cross_entropy(p_: Logits, q_: Logits) -> sp.Expr:
    """H(p, q) = -sum_j p_j log q_j."""
    return -Sum(at(p_, s) * log(at(q_, s)), (s, 1, T))


def softmax_loss(y_: Logits = y, a_: Logits = a) -> sp.Expr:
    """L = -sum_j y_j log S_j, S = softmax(a)."""
    return -Sum(at(y_, s) * log(softmax(s, a_)), (s, 1, T))


def smoothed(y_: Logits = y, eps_: sp.Expr = eps) -> Callable[[sp.Expr], sp.Expr]:
    """Label smoothing: y'_j = (1 - eps) y_j + eps / T."""
    return lambda idx: (1 - eps_) * at(y_, idx) + eps_ / T


def weighted_loss(u_: Logits = u, a_: Logits = a) -> sp.Expr:
    """L_u = -sum_j u_j log S_j: cross entropy with per-class weights folded into u
    (u_j = w_j y'_j; PyTorch's weighted and label-smoothed loss)."""
    return -Sum(at(u_, s) * log(softmax(s, a_)), (s, 1, T))


def two_class(z_: sp.Expr = z) -> Callable[[sp.Expr], sp.Expr]:
    """The logits (z, 0) of two classes."""
    return lambda idx: sp.Piecewise((z_, sp.Eq(idx, 1)), (0, True))


def sigmoid(z_: sp.Expr = z) -> sp.Expr:
    """sigma(z) = 1 / (1 + e^{-z}) (the formula of the array function Sigmoid)."""
    return functions.sigmoid(z_)


#: softplus(x) = log(1 + e^x) (the formula of the array function Softplus)
softplus = functions.softplus


def binary_cross_entropy(z_: sp.Expr = z, y_: sp.Expr = yb, pw_: sp.Expr = 1) -> sp.Expr:
    """PyTorch's binary_cross_entropy_with_logits: -(p_w y log sigma(z) + (1 - y) log(1 - sigma(z)))."""
    return -(pw_ * y_ * log(sigmoid(z_)) + (1 - y_) * log(1 - sigmoid(z_)))


def sum_except(body: Callable[[sp.Expr], sp.Expr], skip: sp.Expr) -> sp.Expr:
    """sum_{j != skip} body(j), written as sum_j body(j) (1 - delta_{j,skip})."""
    return Sum(body(s) * (1 - KroneckerDelta(s, skip)), (s, 1, T))


# --------------------------------------------------------------------------- assumptions
@dataclass(frozen=True)
class ProbabilityVector(Assumption):
    """vec_j >= 0 and sum_j vec_j = 1."""

    vec: IndexedBase = y

    def rewrite(self, expr):
        def is_total(e):
            return (isinstance(e, Sum) and len(e.limits) == 1
                    and e.limits[0][1:] == (1, T)
                    and e.function == self.vec[e.limits[0][0]])
        return expr.replace(is_total, lambda e: sp.Integer(1))

    def sample(self, env):
        env.probability(self.vec)


@dataclass(frozen=True)
class OneHot(Assumption):
    """vec_j = delta_{j, hot}: the label of class ``hot``."""

    vec: IndexedBase = y
    hot: sp.Symbol = c

    def rewrite(self, expr):
        return expr.replace(lambda e: isinstance(e, Indexed) and e.base == self.vec,
                            lambda e: KroneckerDelta(e.indices[0], self.hot))

    def sample(self, env):
        env.one_hot(self.vec, self.hot)


@dataclass(frozen=True)
class Argmax(Assumption):
    """a_k is a largest logit: a_k >= a_j for every j."""

    vec: IndexedBase = a
    top: sp.Symbol = k

    def sample(self, env):
        env.make_argmax(self.vec, self.top)


@dataclass(frozen=True)
class Gap(Assumption):
    """a_j = a_k + delta with delta > 0 (so a_j > a_k)."""

    vec: IndexedBase = a
    above: sp.Symbol = j
    below: sp.Symbol = k

    def rewrite(self, expr):
        return expr.xreplace({self.vec[self.above]: self.vec[self.below] + delta})

    def sample(self, env):
        env.distinct(self.above, self.below)
        env.gap(self.vec, self.above, self.below)


@dataclass(frozen=True)
class Values(Assumption):
    """vec = the given concrete vector (a worked example with numbers)."""

    vec: IndexedBase = Qv
    values: tuple = ()

    def rewrite(self, expr):
        # the exact rational of the text given (nsimplify would make a 35-digit
        # 0.333... exactly 1/3)
        return expr.xreplace({self.vec[idx + 1]: _exact(val) for idx, val in enumerate(self.values)})

    def sample(self, env):
        for idx, val in enumerate(self.values):
            env[self.vec[idx + 1]] = _mpf(_exact(val))


def _exact(value) -> sp.Rational:
    """The rational a decimal is written as ("0.1": 1/10)."""
    return sp.Rational(value if isinstance(value, str) else str(value))


@dataclass(frozen=True)
class SoftmaxOutput(Assumption):
    """vec_j = S_j = e^{a_j} / sum_k e^{a_k}: vec is the softmax of the logits."""

    vec: IndexedBase = Qv
    logits: IndexedBase = a

    def rewrite(self, expr):
        return expr.replace(lambda e: isinstance(e, Indexed) and e.base == self.vec,
                            lambda e: softmax(e.indices[0], self.logits))

    def sample(self, env):
        with mpmath.workdps(INSTANCE_DIGITS):
            total = mpmath.fsum(mpmath.exp(env[_at(self.logits, idx)]) for idx in range(1, env.T + 1))
            for idx in range(1, env.T + 1):
                env[_at(self.vec, idx)] = mpmath.exp(env[_at(self.logits, idx)]) / total


REAL_LOGITS = Assumption("all logits a_j, features x_n, weights W_pq and biases b_p are real")
INDICES_IN_RANGE = Assumption("free class indices lie in 1..T, feature indices in 1..N")
SOFT_LABEL = ProbabilityVector("y is a probability vector: y_j >= 0 and sum_j y_j = 1", y)
SOFT_P = ProbabilityVector("p is a probability vector: p_j >= 0 and sum_j p_j = 1", P)
ONE_HOT = OneHot("y is one-hot at the true class c: y_j = delta_jc", y, c)
I_NE_J = Distinct("i != j", i, j)
K_IS_ARGMAX = Argmax("a_k = max_j a_j (k is an index of a largest logit)", a, k)
Q_IS_SOFTMAX = SoftmaxOutput("q is the softmax output: q_j = S_j", Qv, a)
J_ABOVE_K = Gap("a_j > a_k, written a_j = a_k + delta with delta > 0", a, j, k)


def _mpf(value) -> mpmath.mpf:
    """``value`` as an mpmath number: a double or an integer (every draw) exactly, as
    rounding it to :data:`INSTANCE_DIGITS` would give it, without entering a context (a
    quarter of the time: an instance holds thousands of values); anything else (a
    rational) rounded to :data:`INSTANCE_DIGITS`."""
    if isinstance(value, float):
        return mpmath.mp.make_mpf(from_float(value))
    if isinstance(value, (int, np.integer)):
        return mpmath.mp.make_mpf(from_int(int(value)))
    with mpmath.workdps(INSTANCE_DIGITS):
        return mpmath.mpf(value)


#: digits of the values of a concrete instance (exact relations such as
#: sum_j y_j = 1 or a_j = a_k + delta hold to this precision)
INSTANCE_DIGITS = 60


def _at(base, *idx):
    """``base[idx]`` for integer indices, each built once (:func:`derive.symbols.component`):
    an instance sets thousands of components, SymPy takes ~30 us to build one."""
    return symbols.component(base, tuple(int(i) for i in idx))


class Instance(symbols.Instance):
    """Concrete values for one numeric check: T, N, the free indices and the vectors.

    Maps SymPy atoms (symbols and Indexed objects) to Python ints (T, N, indices) or
    mpmath numbers at :data:`INSTANCE_DIGITS` digits. Built by the proof engine from a
    random generator; the assumptions adjust it through the hooks below. Before they
    do, every vector is unconstrained (p, q and y are not probability vectors, u and w
    are merely non-negative).
    """

    def __init__(self, rng, n_classes: int, n_features: int):
        dict.__init__(self)  # the draws below, in this order, are the built-in stream
        self.rng = rng
        self.T, self.N = n_classes, n_features
        self[T], self[N] = n_classes, n_features
        self.B = symbols.draw_size(rng)  # 1..3, or in the tens on a wide instance
        self[B] = self.B
        self[beta] = int(rng.integers(1, self.B + 1))
        # the free indices, each over its range in the active notation (a catalogue
        # that uses this one may mean another range by the same name), in this order
        ranges = notation.current().index_ranges
        drawn = {}
        for sym in INDEX_RANGES:
            size = ranges.get(sym, INDEX_RANGES[sym])
            if self._draw_index(sym, size, drawn, rng):
                drawn[sym] = size
        self._draw_vectors(rng)
        self._draw_batch(rng)
        self._draw_scalars(rng)
        # indices other content declared (derive.stable's shift index of a softmax),
        # half of them equal to an index drawn before; from a generator of their own,
        # seeded by this instance, so that the built-in stream is the same whatever
        # other content the notation holds
        extra = [sym for sym in ranges if sym not in INDEX_RANGES]
        if extra:
            own = np.random.default_rng([n_classes, n_features, *(self[sym] for sym in drawn)])
            for sym in extra:
                self._draw_index(sym, ranges[sym], drawn, own)

    def _draw_index(self, sym, rng_sym, drawn: dict, rng) -> bool:
        """Draw the free index ``sym`` over the range ``rng_sym`` (False if it is not T or N):
        half the time a copy of an index drawn before over the same range, so that
        coincidences such as j = c or c = k (where a formula branches) are common."""
        hi = {T: self.T, N: self.N}.get(rng_sym)
        if hi is None:
            return False
        same_range = [other for other, where in drawn.items() if where == rng_sym]
        if same_range and rng.random() < 0.5:
            self[sym] = self[same_range[int(rng.integers(len(same_range)))]]
        else:
            self[sym] = int(rng.integers(1, hi + 1))
        return True

    def _draw_vectors(self, rng) -> None:
        """The vectors of one sample and the FC layer's x and W."""
        # (an array of draws holds the values that as many single draws give, in order)
        for base in (a, v, P, Qv, y, b, bw):
            self._set_row(base, (), rng.normal(0, 2.0, size=self.T))
        for base in (u, w):
            self._set_row(base, (), rng.uniform(0, 3.0, size=self.T))
        # no vector is normalised here: only an assumption (ProbabilityVector, OneHot)
        # makes one a probability vector, so a missing "sum_j p_j = 1" shows
        for idx in range(1, self.N + 1):
            self[_at(x, idx)] = _mpf(rng.normal(0, 1.0))
            for row, value in enumerate(rng.normal(0, 0.7, size=self.T), 1):
                self[_at(W, row, idx)] = _mpf(value)

    def _set_row(self, base, lead: tuple, values) -> None:
        """``base[*lead, 1..len(values)]`` set to ``values``."""
        for idx, value in enumerate(values, 1):
            self[_at(base, *lead, idx)] = _mpf(value)

    def _draw_batch(self, rng) -> None:
        """The batch's features X, labels Y, logits A and sample weights rho."""
        for sample in range(1, self.B + 1):
            self._set_row(X, (sample,), rng.normal(0, 1.0, size=self.N))
            for idx in range(1, self.T + 1):
                self[_at(Yb, sample, idx)] = _mpf(rng.uniform(0, 1.0))
                self[_at(Ab, sample, idx)] = _mpf(rng.normal(0, 2.0))
            # some samples ignored (rho = 0), never all: a mean over nothing is undefined
            self[_at(rho, sample)] = _mpf(rng.uniform(0.1, 2.0) if sample == 1 or rng.random() < 0.5 else 0.0)

    def _draw_scalars(self, rng) -> None:
        self[t] = _mpf(rng.normal(0, 5.0))
        self[m] = _mpf(rng.normal(0, 5.0))
        self[delta] = _mpf(rng.uniform(0.01, 4.0))
        self[eps] = _mpf(rng.uniform(0, 1))
        self[z] = _mpf(rng.normal(0, 4.0))
        self[yb] = _mpf(rng.uniform(0, 1))
        self[pw] = _mpf(rng.uniform(0.1, 5))
        self[zp] = _mpf(rng.uniform(0.01, 30))

    def probability(self, base):
        weights = [_mpf(w) for w in self.rng.gamma(0.7, size=self.T)]
        with mpmath.workdps(INSTANCE_DIGITS):
            total = mpmath.fsum(weights)
            for idx in range(1, self.T + 1):
                self[_at(base, idx)] = weights[idx - 1] / total

    def one_hot(self, base, hot):
        where = int(hot) if isinstance(hot, (int, sp.Integer)) else self[hot]
        for idx in range(1, self.T + 1):
            self[_at(base, idx)] = _mpf(1 if idx == where else 0)

    def make_argmax(self, base, top):
        best = max(self[_at(base, idx)] for idx in range(1, self.T + 1))
        with mpmath.workdps(INSTANCE_DIGITS):
            self[_at(base, self[top])] = best + _mpf(self.rng.uniform(0, 1.0))

    def gap(self, base, above, below):
        with mpmath.workdps(INSTANCE_DIGITS):
            self[_at(base, self[above])] = self[_at(base, self[below])] + self[delta]


NOTATION.use_instance(Instance)
# a library of content: every catalogue file loaded, and code that activates no notation
# (a script, the tests), see the built-in's notation once it is imported
LIBRARY.include(NOTATION)
