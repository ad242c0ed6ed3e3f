"""One declaration per loss: :class:`Loss` yields the derived gradient, the stable
kernels of the loss and its gradient (:mod:`derive.stable`), their proofs, the
verifications over the declared ranges and the report entries, registered into a
:class:`derive.Catalogue`; ``python -m derive loss NAME "EXPR"`` runs every stage for
one loss (:func:`run`).

The machinery names no quantity of a content: the content's language (the names of
the logits, the target, the softmax, the label assumptions and the rules that close a
gradient) is a :class:`Content`; the built-in softmax content's is
:data:`derive.softmax.losses.CONTENT`.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy as sp
from sympy import Derivative, IndexedBase

from . import codegen, engine, stable, symbols
from .autodiff import gradient
from .codegen import Claim, Kernel
from .engine import Step
from .functions import define_arrays
from .registry import Catalogue
from .verification import DEFAULT_INPUTS, Inputs, Verification


class NotClosed(ValueError):
    """The gradient did not close (the last form reached is in the message)."""


@dataclass(frozen=True)
class Content:
    """What a loss is written in: the logits vector and its array, the target index
    and its column, the soft-label vector and its array, the output index, the label
    assumptions by kind, the base assumptions, ``rules_for(expr)`` (the gradient rule
    set closing a loss in its softmaxes) and ``recognise(expr)`` (the softmax Defines),
    and ``uses`` (catalogues a loss's catalogue cites)."""

    logits: IndexedBase
    logits_array: sp.Symbol
    target: sp.Symbol
    target_array: sp.Symbol
    soft: IndexedBase
    soft_array: sp.Symbol
    index: sp.Symbol
    labels: dict
    base: tuple
    rules_for: Callable
    recognise: Callable
    uses: tuple = ()
    parse: Callable | None = None


@dataclass
class Loss:
    """A loss, declared once.

    ``expr`` is the loss of one row in the content's index notation (the softmax of any
    expression of the logits, the target c or the soft label y, the declared inputs and
    parameters); ``params`` maps each parameter (a Symbol, or its name) to its range
    (lo, hi), over which it is drawn in the proofs and the verification; ``inputs`` are
    extra vectors (IndexedBase: a teacher's logits, a per-class offset) with the range
    of their values (a dict, or a tuple for the default (-1000, 1000) range of
    logits); ``labels`` is "onehot", "soft" or "none"; ``min_classes`` the smallest T
    the loss is stated for.

    :meth:`build` returns the catalogue entries; :meth:`register` adds them to a
    catalogue.

    Examples
    --------
    The focal loss over gamma in [0, 2], its gradient derived and its kernels derived
    into stable forms (1 - S_c through the other classes, the pair S_j - delta_jc
    factored out):

    >>> import sympy as sp
    >>> from derive import Loss, scalar
    >>> from derive.softmax import definitions as D
    >>> gamma = scalar("gamma", lambda rng: rng.uniform(0, 2), nonnegative=True)
    >>> S = D.softmax
    >>> focal = Loss("focal", -(1 - S(D.c)) ** gamma * sp.log(S(D.c)), {gamma: (0, 2)},
    ...              min_classes=2).build()
    >>> focal.derivation.closed, [k.name for k in focal.kernels]
    (True, ['focal_rows', 'focal_grad_rows'])
    >>> focal.stable[1].rules[:3]
    ('complement', 'factor_pair', 'scaled_product')
    """

    name: str
    expr: sp.Expr
    params: dict = field(default_factory=dict)
    inputs: tuple | dict = ()
    labels: str = "onehot"
    min_classes: int = 1
    bound: float = 4.0
    content: Content | None = None

    # filled by build()
    derivation: object = None
    kernels: tuple = ()
    verifications: tuple = ()
    stable: tuple = ()

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"a loss name is a Python identifier (it names functions); got {self.name!r}")
        if self.labels not in ("onehot", "soft", "none"):
            raise ValueError(f"labels must be onehot, soft or none; got {self.labels!r}")
        if self.content is None:  # the built-in content's language
            from .registry import load_catalogue
            self.content = load_catalogue().loss_content
        self.params = {(symbols_scalar(p, lo, hi) if isinstance(p, str) else p): (lo, hi)
                       for p, (lo, hi) in self.params.items()}
        if not isinstance(self.inputs, dict):
            self.inputs = {vec: (-1000.0, 1000.0) for vec in self.inputs}
        self.arrays = {}
        for vec in self.inputs:
            array = sp.Symbol(str(vec).upper() + "_in", real=True)
            define_arrays({array: vec})
            self.arrays[vec] = array

    # ---------------------------------------------------------------- the pieces
    @property
    def assumptions(self) -> tuple:
        return tuple(self.content.base) + tuple(self.content.labels[self.labels])

    @property
    def kernel_args(self) -> tuple:
        ct = self.content
        label = {"onehot": (ct.target_array,), "soft": (ct.soft_array,), "none": ()}[self.labels]
        return (ct.logits_array, *label, *self.arrays.values(), *self.params)

    def build(self) -> Loss:
        """Derive, stabilise and state the claims and verifications (nothing proved yet:
        ``prove``/``generate`` check them)."""
        ct = self.content
        j = ct.index
        rules = ct.rules_for(self.expr)
        self.derivation = gradient(self.expr, ct.logits[j], self.assumptions, rules, key=f"{self.name}_gradient",
                                   title=f"Gradient of {self.name} (automatic)", check=False,
                                   min_classes=self.min_classes)
        if not self.derivation.closed:
            raise NotClosed(f"the gradient of {self.name} is not closed: the rules reached "
                            f"{sp.sstr(self.derivation.result)} and no rule applies")
        main, others = ct.recognise(self.expr)
        fams = stable.families((main, *others))
        named = self.expr
        for define in (*others, main):
            named = define.fold(named)
        loss_form = stable.stabilise(named, fams, j, ct.target)
        grad_form = stable.stabilise(self.derivation.result, fams, j, ct.target)
        self.stable = (loss_form, grad_form)
        top = self.assumptions
        args = self.kernel_args
        loss_claim = Claim(f"kernel_{self.name}", rf"Kernel {_tex(self.name)} $= L$", top, self.expr,
                           "definition", (), min_classes=self.min_classes)
        grad_claim = Claim(f"kernel_{self.name}_grad", rf"Kernel {_tex(self.name)}\_grad $= \partial L/\partial a_j$",
                           top + self.derivation.definitions, Derivative(self.expr, ct.logits[j]),
                           "the derivative", (),
                           via=(Step(self.derivation.unfolded, "the gradient, derived above",
                                     lemma=self.derivation),), min_classes=self.min_classes)
        rules_doc = lambda form: ", ".join(dict.fromkeys(form.rules)) or "none"  # noqa: E731
        self.kernels = (
            Kernel(f"{self.name}_rows", args, (loss_form.array,),
                   f"{self.name}: L = {sp.sstr(named)} per row (stable rules: {rules_doc(loss_form)}).",
                   (loss_claim,), quiet=True),
            Kernel(f"{self.name}_grad_rows", args, (grad_form.array,),
                   f"{self.name}_grad: dL/da_j = {sp.sstr(self.derivation.result)} "
                   f"(stable rules: {rules_doc(grad_form)}).", (grad_claim,), quiet=True),
        )
        suite = self.suite()
        label = tuple(ct.labels[self.labels])
        loss_scale = stable.magnitude(named, loss_form.cancelling)
        loss_scale = None if loss_scale == named else _unfold_all(loss_scale, (main, *others))
        loss_check = Verification(self.name, self.kernels[0], self.expr, symbols.CLASSES, bound=self.bound,
                                  inputs=suite, assumptions=label, scale=loss_scale, ranges=dict(self.params))
        scale = stable.magnitude(self.derivation.result, grad_form.cancelling)
        scale = None if scale == self.derivation.result else _unfold(scale, self.derivation)
        grad_check = Verification(f"{self.name}_grad", self.kernels[1], self.derivation.unfolded, symbols.CLASSES,
                                  index=j, bound=self.bound, gradient_of=loss_check, inputs=suite,
                                  assumptions=label, scale=scale, ranges=dict(self.params))
        self.verifications = (loss_check, grad_check)
        return self

    def suite(self) -> tuple:
        """The verification inputs: the suites every catalogue gets (moderate logits at
        T = 3 and 10, spread over +-1000, one class dominating, tiny losses, near +-708,
        ties, T = 100), each with this loss's parameters, second logits and soft labels
        drawn as below; and the loss's own: every parameter at one end of its range or
        the other (mixed), all low and all high (for two parameters or more), logits
        spread over +-40, logits near +-1000, and second logits
        as large as the first, near +-1000 and near the first. Each parameter's low end,
        middle and high end come on top (:func:`derive.verification.parameter_inputs`)."""
        fixed = self._fixed
        own = (
            Inputs("parameters at their ends", lambda rng: rng.normal(0, 3, (8, 5)), fixed=fixed("ends")),
            # every parameter low, every one high (one parameter alone: its range's entries)
            *((Inputs("parameters low", lambda rng: rng.normal(0, 3, (4, 4)), fixed=fixed("low")),
               Inputs("parameters high", lambda rng: rng.normal(0, 3, (4, 4)), fixed=fixed("high")))
              if len(self.params) > 1 else ()),
            Inputs("spread logits", lambda rng: rng.uniform(-40, 40, (6, 6)), fixed=fixed("moderate")),
            Inputs("logits near +-1000", lambda rng: rng.choice([-1.0, 1.0], (6, 1)) * 1000
                   + rng.normal(0, 3, (6, 6)), fixed=fixed("large")),
            *((Inputs("second logits as large", lambda rng: rng.uniform(-1000, 1000, (6, 6)), fixed=fixed("large")),
               Inputs("second logits near +-1000", lambda rng: rng.normal(0, 4, (4, 6)), fixed=fixed("large")),
               Inputs("second logits near the first", lambda rng: rng.normal(0, 4, (4, 6)), fixed=fixed("near_logits")))
              if self.inputs else ()),
        )
        return tuple(dataclasses.replace(entry, fixed=fixed("moderate")) for entry in DEFAULT_INPUTS) + own

    def _fixed(self, kind: str):
        """``Inputs.fixed`` for the suite: the second logits (``large``: uniform over
        their range; ``near_logits``: the first plus N(0, 1); else N(0, 3)), the
        parameters (``low``, ``high``, ``ends``: one end or the other; else uniform), the
        target at the argmax for ``tiny``, soft labels that sum to exactly 1."""
        ct = self.content
        params = list(self.params.items())

        def make(rng, logits):
            out = {}
            for vec, (lo, hi) in self.inputs.items():
                if kind == "large":
                    out[vec] = rng.uniform(lo, hi, logits.shape)
                elif kind == "near_logits":  # a teacher close to the student
                    out[vec] = np.clip(logits + rng.normal(0, 1, logits.shape), lo, hi)
                else:
                    out[vec] = rng.normal(0, min(3.0, hi), logits.shape)
            for n, (p, (lo, hi)) in enumerate(params):
                out[p] = {"low": lo, "high": hi}.get(kind, rng.uniform(lo, hi))
                if kind == "ends":
                    out[p] = (lo, hi)[(n + int(rng.integers(2))) % 2]
            if self.labels == "onehot" and kind == "tiny":
                out[ct.target] = np.argmax(logits, axis=-1)
            if self.labels == "soft":  # multiples of 2^-10 that sum to exactly 1
                p = rng.dirichlet(np.full(logits.shape[-1], 0.7), logits.shape[0])
                out[ct.soft] = np.array([rng.multinomial(1024, row) for row in p]) / 1024.0
            return out
        return make

    def register(self, catalogue: Catalogue) -> Loss:
        """Build (if not built) and add the derivation, the kernels, the verifications and
        a report section to ``catalogue``."""
        if self.derivation is None:
            self.build()
        catalogue.add(self.derivation)
        for kernel in self.kernels:
            catalogue.kernel(kernel)
        for spec in self.verifications:
            catalogue.verification(spec)
        catalogue.section(f"The loss {self.name}", self.describe())
        return self

    def describe(self) -> str:
        loss_form, grad_form = self.stable
        params = ", ".join(f"${sp.latex(p)} \\in [{lo:g}, {hi:g}]$" for p, (lo, hi) in self.params.items())
        inputs = ", ".join(f"${sp.latex(v)}$ (values in [{lo:g}, {hi:g}])" for v, (lo, hi) in self.inputs.items())
        lines = [f"$L = {sp.latex(self.expr)}$ with {self.labels} labels"
                 + (f", parameters {params}" if params else "") + (f", inputs {inputs}" if inputs else "") + ".",
                 "",
                 f"Gradient, derived automatically: $\\partial L/\\partial a_j = {sp.latex(self.derivation.result)}$.",
                 "",
                 "Stable kernels, derived by the rules of `derive.stable`: the loss by "
                 f"{', '.join(dict.fromkeys(loss_form.rules)) or 'none'}; the gradient by "
                 f"{', '.join(dict.fromkeys(grad_form.rules)) or 'none'}. Each kernel is proved equal "
                 "to its definition below."]
        cancelling = loss_form.cancelling + grad_form.cancelling
        if cancelling:
            sums = "; ".join(f"${sp.latex(e)}$" for e in cancelling)
            lines += ["", f"The kernels hold sums whose terms cancel ({sums}): their error is measured in "
                          "ULPs of the same expression with each such sum replaced by the sum of its terms' "
                          "magnitudes (the sum's own condition), not of the result."]
        return "\n".join(lines)

    # ---------------------------------------------------------------- the module
    def module_source(self) -> str:
        """The generated module: the row kernels and the public functions
        ``NAME(logits, target, **inputs)`` and ``NAME_grad(...)``."""
        text = codegen.render(self.kernels, HEADER.format(name=self.name, expr=sp.sstr(self.expr),
                                                          labels=self.labels, sympy=sp.__version__))
        names = [str(v) for v in self.inputs] + [p.name for p in self.params]
        keywords = "".join(f", {n}" for n in names)
        inputs = "".join(f"    {n} = _vector({n}, a.shape)\n" for n in map(str, self.inputs))
        scalars = "".join(f"    {p.name} = float({p.name})\n" for p in self.params)
        call = ", ".join(["rows"] + (["target"] if self.labels != "none" else []) + names)
        target = {"onehot": "    target = numpy.asarray(target).astype(numpy.int64).reshape(-1, 1)\n",
                  "soft": "    target = _vector(target, a.shape)\n", "none": ""}[self.labels]
        for fn, kernel, full in ((self.name, self.kernels[0], False), (f"{self.name}_grad", self.kernels[1], True)):
            text += WRAPPER.format(fn=fn, kernel=kernel.name, keywords=keywords, inputs=inputs, scalars=scalars,
                                   call=call, target=target, shape="a.shape" if full else "a.shape[:-1]",
                                   what="dL/dlogits, shaped like the logits" if full else "the loss of each row")
        return text.replace("__all__ = [", f"__all__ = [{self.name!r}, {self.name + '_grad'!r}, ", 1)

    def write_module(self, path: Path) -> Path:
        codegen.prove_kernels(self.kernels)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.module_source())
        return path


HEADER = '''\
# Generated by softmax-derive from one declaration -- do not edit (SymPy {sympy}).
# Regenerate with `python -m derive loss {name} "<EXPR>" ... --out DIR`.
"""The loss {name}: L = {expr} ({labels} labels), its gradient derived and both kernels
derived into stable forms and proved (derive.loss, derive.stable).

``{name}(logits, target, **inputs)`` is the loss of each row, ``{name}_grad(...)`` the
gradient with respect to the logits; the classes are the last axis, ``target`` class
indices (onehot) or probabilities shaped like the logits (soft).
"""
import numpy


def _vector(x, shape):
    """A per-class input broadcast to the logits' shape, as float64 rows."""
    x = numpy.broadcast_to(numpy.asarray(x, dtype=numpy.float64), shape)
    return numpy.ascontiguousarray(x).reshape(-1, shape[-1])
'''

WRAPPER = '''

def {fn}(logits, target{keywords}):
    """{what} (see the module docstring)."""
    a = numpy.asarray(logits, dtype=numpy.float64)
    if a.ndim == 0:
        raise ValueError("logits need a class axis (the last)")
    rows = numpy.ascontiguousarray(a).reshape(-1, a.shape[-1])
{target}{inputs}{scalars}    out = {kernel}({call})
    return numpy.asarray(out).reshape({shape})
'''


def _tex(name: str) -> str:
    return name.replace("_", r"\_")


def _unfold_all(expr, defines):
    for define in defines:
        expr = define.unfold(expr)
    return expr


def _unfold(expr, derivation):
    for assumption in derivation.definitions:
        return assumption.rewrite(expr)
    return expr


def symbols_scalar(name: str, lo: float, hi: float) -> sp.Symbol:
    """A parameter with its range: drawn uniformly from [lo, hi] in the proofs and the
    verification, positive if lo > 0, non-negative if lo >= 0. ``lambda`` is spelled
    ``lamda`` (as SymPy does)."""
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"the range of {name} must be finite with LO <= HI; got {lo}:{hi}")
    facts = {"positive": True} if lo > 0 else {"nonnegative": True} if lo >= 0 else {}
    name = "lamda" if name == "lambda" else name
    return symbols.scalar(name, lambda rng, lo=lo, hi=hi: rng.uniform(lo, hi), real=True, **facts)


# --------------------------------------------------------------------------- the command
def run(loss: Loss, out: Path, catalogue_name: str | None = None, echo=print, executor=None) -> int:
    """Prove, generate, verify and report one loss into ``out``; the exit status (0 ok,
    1 a failed check, 3 not closed or no stable form within the bound). The reference
    values are computed by ``executor`` (None: here) and kept in the reference cache."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    status = _build(loss, echo)
    if status:
        return status
    cat = Catalogue(catalogue_name or loss.name, f"The loss {loss.name}", uses=loss.content.uses)
    loss.register(cat)
    module = _prove_and_generate(loss, out, echo)
    if module is None:
        return 1
    results = _verify(loss, module, echo, executor)
    if results is None:
        return 1
    (out / f"{loss.name}_verification.json").write_text(json.dumps([r.as_dict() for r in results], indent=1) + "\n")
    status = max((_judge(loss, result, spec, echo) for result, spec in zip(results, loss.verifications)), default=0)
    status = max(status, _report(loss, cat, results, out, echo))
    echo(f"loss {loss.name}: {'every stage passed' if status == 0 else 'FAILED'} "
         f"({time.perf_counter() - tic:.1f}s)")
    return status


def _build(loss: Loss, echo) -> int:
    """0 once the loss is built, 3 (said) when its gradient does not close or a part of
    it has no stable form."""
    try:
        loss.build()
    except NotClosed as err:
        echo(f"NOT CLOSED {err}")
        return 3
    except stable.NotStable as err:
        echo(f"CANNOT STABILISE {loss.name}: {err}")
        return 3
    echo(f"ok   gradient  {sp.sstr(loss.derivation.result)}   [rules: {', '.join(loss.derivation.rules)}]")
    return 0


def _prove_and_generate(loss: Loss, out: Path, echo):
    """The derivation checked, the kernels proved and written, the module imported (None:
    a step or a kernel was rejected, said)."""
    import importlib.util

    try:
        engine.check(loss.derivation)
        echo(f"ok   prove     {loss.derivation.key}: {len(loss.derivation.steps) - 1} steps checked")
        path = loss.write_module(out / f"{loss.name}_kernels.py")
    except engine.StepRejected as err:
        echo("FAIL a step or a kernel was rejected:\n     " + str(err).replace("\n", "\n     "))
        return None
    echo(f"ok   generate  {path} (each kernel proved against its definition)")
    spec = importlib.util.spec_from_file_location(f"_loss_{loss.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verify(loss: Loss, module, echo, executor) -> list | None:
    """The results of the loss's verifications (None: a reference cannot be evaluated on
    the suites, said: never a traceback)."""
    from .verification import bind, verify_function

    results, undefined = [], []
    for v in loss.verifications:
        try:
            results.append(verify_function(bind(v, module), executor))
        except engine.EvaluationError as err:
            undefined.append(f"FAIL verify    {v.name}: its reference cannot be evaluated on the suites: {err}")
    if undefined:
        echo("\n".join(undefined))
        return None
    return results


def _judge(loss: Loss, result, spec, echo) -> int:
    """Say one verification's result; its status (3: past the bound, with the measured
    error, where and the subexpression; 1: another failed check)."""
    unit = " of the terms' magnitudes" if spec.scale is not None else ""
    fd = ("" if result.fd_function is None else
          f"; finite differences {result.fd_reference:.1e}, {result.fd_function:.1e}")
    echo(f"{'ok  ' if result.passed else 'FAIL'} verify    {result.name}: worst {result.max_ulp:.2f} ULP{unit} "
         f"(bound {result.bound:g}){fd}")
    if result.passed:
        return 0
    worst = max(result.worst, key=result.worst.get)
    form = loss.stable[0 if spec.gradient_of is None else 1]
    where = (f"the sums that cancel: {'; '.join(map(sp.sstr, form.cancelling))}" if form.cancelling
             else f"the expression {sp.sstr(form.expr)}")
    echo(f"CANNOT STABILISE {result.name}: measured {result.max_ulp:.3g} ULP on '{worst}' "
         f"(bound {result.bound:g}); no stable form found for {where}")
    return 3 if result.max_ulp > result.bound else 1


def _report(loss: Loss, cat: Catalogue, results: list, out: Path, echo) -> int:
    """The report (.md, .tex, and the PDF where a TeX engine is installed); 1 (said) when
    LaTeX fails on it."""
    from . import publish
    from .executors import shown_path
    from .latex import LatexError, compile_pdf, tex_engine

    proofs = codegen.kernel_proofs(cat.kernels)
    for written in publish.build_report(cat.title, [*cat, *proofs], results, out, loss.name, cat.sections):
        echo(f"ok   report    {written}")
    if tex_engine() is None:
        echo("     report    no PDF: no TeX engine (latexmk or pdflatex) is installed")
        return 0
    try:
        echo(f"ok   report    {shown_path(compile_pdf(out / f'{loss.name}.tex'))}")
    except LatexError as err:
        echo(f"FAIL report    {err}")
        return 1
    return 0


def main(args, content: Content) -> int:
    """``python -m derive loss``: read the declaration from the command line (in the
    language of ``content``) and :func:`run` it."""
    try:
        loss = content.parse(args.name, args.expr, args.param or [], args.input or [], args.labels,
                             min_classes=args.min_classes)
    except ValueError as err:
        print(f"FAIL {err}".splitlines()[0], file=sys.stderr)
        return 2
    from . import executors

    try:
        executor = executors.make(getattr(args, "jobs", None), getattr(args, "scheduler", None))
    except executors.SchedulerError as err:
        print(f"FAIL {err}", file=sys.stderr)
        return 2
    try:
        return run(loss, Path(args.out or "."), executor=executor)
    finally:
        if executor is not None:
            executor.shutdown()
