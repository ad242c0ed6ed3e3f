"""A catalogue carries its notation (derive.notation): index ranges, samplers, the
instance class and array meanings are an object, not module-level tables filled on
import, so two catalogues loaded in one process are each checked with their own, and
the module-level helpers (index, scalar, define_arrays, INDEX_RANGES) declare into and
read the active one."""
from __future__ import annotations

import textwrap

import pytest
import sympy as sp
from sympy import KroneckerDelta, Sum

import derive
from derive import cli, engine, symbols
from derive.functions import A, define_arrays, to_indexed
from derive.notation import DEFAULT, Notation, current
from derive.softmax import CATALOGUE as SOFTMAX
from derive.softmax import definitions as D
from derive.symbols import CLASSES, FEATURES

# the user's k ranges over the features N (the built-in's k, the argmax, over the
# classes T), and its array A is the vector z (the built-in's A: the logits a)
USER = textwrap.dedent('''
    """A user's catalogue that means other things by k and A than the built-in does."""
    import sympy as sp
    from sympy import KroneckerDelta, Sum

    from derive import Catalogue, Step, extend_notation
    from derive.functions import A, define_arrays
    from derive.softmax import CATALOGUE as SOFTMAX
    from derive.symbols import FEATURES, index, s

    k = index("k", FEATURES)
    z = sp.IndexedBase("z", real=True)
    define_arrays({A: z})
    extend_notation(index_names={FEATURES: (s,)})  # its sums over 1..N run over s
    CATALOGUE = Catalogue("mine", "k over the features", uses=[SOFTMAX])
    CATALOGUE.derivation("delta_over_features", "One delta in 1..N", [
        Step(Sum(KroneckerDelta(s, k), (s, 1, FEATURES)), "a delta summed over 1..N"),
        Step(sp.Integer(1), "k lies in 1..N")])
''')


@pytest.fixture
def mine(tmp_path):
    """The user's catalogue, loaded; afterwards the default notation (which sees every
    loaded file's declarations, as scripts expect) forgets it again."""
    path = tmp_path / "mine.py"
    path.write_text(USER)
    saved = list(DEFAULT.uses)
    yield derive.load_catalogue(str(path))
    DEFAULT.uses = saved


def _argmax_derivation():
    """A built-in derivation whose statement uses k as the argmax over the classes."""
    return min((d for d in SOFTMAX if D.k in set().union(*(st.expr.free_symbols for st in d.steps))),
               key=lambda d: len(d.steps))


def test_each_catalogue_is_checked_with_its_own_index_ranges(mine):
    assert mine.notation.index_ranges[D.k] == FEATURES
    assert SOFTMAX.notation.index_ranges[D.k] == CLASSES
    user = mine["delta_over_features"]
    assert [type(o).__name__ for _, o in derive.check_all(mine)] == ["DerivationCheck"]
    with SOFTMAX.notation.active():  # under the built-in's k (1..T) the user's statement is false
        with pytest.raises(engine.StepFalse):
            engine.check(user)
    builtin = _argmax_derivation()
    with SOFTMAX.notation.active():
        assert engine.check(builtin).steps
    with mine.notation.active():  # under the user's k (1..N) the built-in's cannot be evaluated
        with pytest.raises(engine.StepRejected):
            engine.check(builtin)


def test_each_catalogue_has_its_own_array_meanings(mine):
    j = symbols.j
    with mine.notation.active():
        assert to_indexed(A, j) == sp.IndexedBase("z", real=True)[j]
    with SOFTMAX.notation.active():
        assert to_indexed(A, j) == D.a[j]


def test_each_catalogue_has_its_own_report_notation(mine):
    """What a catalogue's file declares for its reports (extend_notation) is its own: the
    built-in's reports, and code that activates no notation, print as before."""
    from derive.printing import tex

    g, t = sp.IndexedBase("g"), sp.Symbol("t", integer=True, positive=True)
    total = Sum(g[t], (t, 1, FEATURES))
    with mine.notation.active():
        assert tex(total) == r"\sum_{s} g_{s}"
    with SOFTMAX.notation.active():
        assert tex(total) == r"\sum_{n} g_{n}"
    with Notation("fresh").active():  # sees nobody's content: the machinery's own names
        assert tex(total) == r"\sum_{n} g_{n}"
    with pytest.raises(TypeError, match="no part 'index_name'"):
        derive.extend_notation(into=Notation("typo"), index_name={FEATURES: (t,)})


def test_the_prove_stage_runs_a_user_catalogue_under_its_notation(mine, tmp_path, capsys):
    status = cli.main(["prove", "--catalogue", str(tmp_path / "mine.py"), "--jobs", "1",
                       "--out", str(tmp_path / "out")])
    assert status == 0, capsys.readouterr()
    assert "1 of 1 derivations" in capsys.readouterr().out


def test_a_statement_about_k_over_the_features_is_false_for_the_built_in_everywhere():
    """The same statement as the user's, checked by the built-in's notation: false (the
    test above is not passing because the check cannot fail)."""
    statement = derive.Derivation("delta_t", "One delta in 1..N", (), [
        derive.Step(Sum(KroneckerDelta(symbols.s, D.k), (symbols.s, 1, FEATURES)), "start"),
        derive.Step(sp.Integer(1), "claimed")])
    with SOFTMAX.notation.active():
        with pytest.raises(engine.StepFalse):
            engine.check(statement)


# --------------------------------------------------------------------------- the object
def test_own_declarations_win_over_those_a_notation_uses():
    base, mine = Notation("base"), Notation("mine")
    m = base.index("m_test", CLASSES)
    mine.include(base)
    assert mine.index_ranges[m] == CLASSES
    mine.declare_index(m, FEATURES)
    assert mine.index_ranges[m] == FEATURES and base.index_ranges[m] == CLASSES
    assert list(mine.index_ranges) == [m]


def test_a_cycle_of_notations_is_refused():
    first, second = Notation("first"), Notation("second", uses=[Notation("x")])
    second.include(first)
    with pytest.raises(ValueError, match="cycle"):
        first.include(second)
    with pytest.raises(TypeError):
        first.include("not a notation")


def test_the_module_level_helpers_declare_into_the_active_notation():
    scratch = Notation("scratch", uses=[DEFAULT])
    with scratch.active():
        m = symbols.index("m_scratch", FEATURES)
        tau = derive.scalar("tau_scratch", lambda rng: rng.uniform(1, 2), positive=True)
        G = sp.Symbol("G_scratch", real=True)
        define_arrays({G: sp.IndexedBase("g_scratch")})
        symbols.INDEX_RANGES[sp.Symbol("m_table", integer=True)] = CLASSES
        assert current() is scratch and symbols.INDEX_RANGES[m] == FEATURES
        assert symbols.sampler(tau) is not None and to_indexed(G, symbols.j) == sp.IndexedBase("g_scratch")[symbols.j]
    assert current() is DEFAULT
    assert m not in symbols.INDEX_RANGES and symbols.sampler(tau) is None
    assert sp.Symbol("m_table", integer=True) not in DEFAULT.index_ranges
    assert {m, sp.Symbol("m_table", integer=True)} <= set(scratch.index_ranges)


def test_the_active_notation_is_restored_after_an_exception():
    with pytest.raises(RuntimeError):
        with Notation("failing").active():
            raise RuntimeError("inside")
    assert current() is DEFAULT


def test_a_declaration_cannot_be_removed_through_the_table():
    with pytest.raises(TypeError, match="cannot be removed"):
        del symbols.INDEX_RANGES[D.k]
