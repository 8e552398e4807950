"""The safe expression parser: grammar, symbolic derivatives, and refusal of everything else."""

from __future__ import annotations

import builtins
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import descend as ds
from descend.errors import ExpressionError, InputError
from descend.expr import FUNCTION_NAMES, point_from_text


def test_seed_expression_variables_in_order_of_first_appearance():
    assert ds.parse("2*x**2 + 6*z**2 + 7*m**3").variables == ("x", "z", "m")


def test_seed_expression_partial_derivatives_as_text():
    derivatives = ds.parse("2*x**2 + 6*z**2 + 7*m**3").derivatives
    assert derivatives == {"x": "4*x", "z": "12*z", "m": "21*m**2"}


def test_caret_is_power_with_power_precedence():
    expression = ds.parse("x^2 + 1")
    assert float(expression(3.0)) == 10.0
    assert expression.derivatives == {"x": "2*x"}


CASES = {
    "x**3 - 2*x*y + y**2": lambda x, y: x**3 - 2 * x * y + y**2,
    "sin(x)*cos(y) + exp(-x**2)": lambda x, y: math.sin(x) * math.cos(y) + math.exp(-(x**2)),
    "log(1 + x**2) + sqrt(abs(y) + 1)": lambda x, y: math.log(1 + x**2) + math.sqrt(abs(y) + 1),
    "tanh(x) - sinh(y/3) + cosh(x/4)": lambda x, y: (
        math.tanh(x) - math.sinh(y / 3) + math.cosh(x / 4)
    ),
    "arctan(x) + arcsin(y/5) * arccos(x/5)": lambda x, y: (
        math.atan(x) + math.asin(y / 5) * math.acos(x / 5)
    ),
    "-x/(1 + y**2) + pi*e + tan(x/10)": lambda x, y: (
        -x / (1 + y**2) + math.pi * math.e + math.tan(x / 10)
    ),
}


@pytest.mark.parametrize("text", CASES)
def test_parsed_function_equals_python_math(text, x64):
    expression = ds.parse(text)
    reference = CASES[text]
    rng = np.random.default_rng(1)
    for x, y in rng.uniform(-2, 2, size=(5, 2)):
        assert float(expression(x=x, y=y)) == pytest.approx(reference(x, y), rel=1e-12)


@pytest.mark.parametrize("text", CASES)
def test_symbolic_derivatives_agree_with_autodiff(text, x64):
    expression = ds.parse(text)
    gradient = ds.gradient(expression.function())
    rng = np.random.default_rng(2)
    symbols = {symbol.name: symbol for symbol in expression.symbolic.free_symbols}
    for x, y in rng.uniform(-2, 2, size=(3, 2)):
        point = {"x": float(x), "y": float(y)}
        exact = gradient(point)
        for name in expression.variables:
            symbolic = expression.derivative(name)
            value = float(symbolic.subs({symbols[n]: v for n, v in point.items()}).evalf(30))
            assert float(exact[name]) == pytest.approx(value, rel=1e-10, abs=1e-12)


def test_vector_function_takes_variables_in_order():
    f = ds.parse("x - 2*y").vector_function()
    assert float(f(jnp.array([5.0, 1.0]))) == 3.0


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("__import__('os')", "unsupported name '__import__'", 1),
        ("x + __import__('os').system('true')", "unsupported", 5),
        ("().__class__.__bases__", "attribute access", 1),
        ("x.real", "attribute access", 1),
        ("lambda: 1", "lambda", 1),
        ("[i for i in x]", "comprehension", 1),
        ("(i for i in x)", "comprehension", 1),
        ("f'{x}'", "f-string", 1),
        ("'abc'", "string", 1),
        ("b'abc'", "string", 1),
        ("x[0]", "indexing", 1),
        ("x == 1", "comparison", 1),
        ("x if y else z", "conditional", 1),
        ("(x := 1)", "assignment", 2),
        ("1j * x", "complex", 1),
        ("True * x", "bool", 1),
        ("x % 2", "operator Mod", 1),
        ("x // 2", "operator FloorDiv", 1),
        ("x @ y", "operator MatMult", 1),
        ("~x", "operator Invert", 1),
        ("foo(x)", "unsupported name 'foo'", 1),
        ("sin(x, y)", "exactly one argument", 1),
        ("sin(x=1)", "exactly one argument", 1),
        ("_x + 1", "unsupported name '_x'", 1),
        ("sin", "must be called", 1),
        ("9**9**9**9", "too large", None),
        ("x**100000", "exponent", 1),
        ("1e400 * x", "too large", 1),
        ("5x^2", "write products with *", 1),
        ("1/0", "division by zero", 1),
        ("getattr(x, 'y')", "unsupported name 'getattr'", 1),
        ("globals()", "unsupported name 'globals'", 1),
        ("x; import os", "cannot read", None),
    ],
)
def test_hostile_or_unsupported_text_is_refused_with_column(text, fragment, column):
    with pytest.raises(ExpressionError, match=fragment.replace("(", r"\(")) as info:
        ds.parse(text)
    if column is not None:
        assert info.value.column == column
        assert str(info.value).endswith(f"at column {column}")


def test_refusal_message_for_import_matches_documentation():
    with pytest.raises(ExpressionError) as info:
        ds.parse("__import__('os')")
    assert str(info.value) == "unsupported name '__import__' at column 1"


def test_nothing_runs_when_parsing(tmp_path, monkeypatch):
    """eval, exec, sympify and parse_expr are never called, and no side effect happens."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the parser must not evaluate text")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sympy, "sympify", forbidden)
    import sympy.parsing.sympy_parser as sympy_parser

    monkeypatch.setattr(sympy_parser, "parse_expr", forbidden)
    marker = tmp_path / "marker"
    attacks = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w')",
        "().__class__.__base__.__subclasses__()",
        "exec('1')",
        "eval('1')",
    ]
    for text in attacks:
        with pytest.raises(ExpressionError):
            ds.parse(text)
    expression = ds.parse("sin(x)**2 + y")
    assert expression.derivatives["x"] == "2*sin(x)*cos(x)"
    assert not marker.exists()


def test_limits_on_length_and_nesting():
    with pytest.raises(ExpressionError, match="limit"):
        ds.parse("x+" * 6000 + "x")
    with pytest.raises(ExpressionError, match="nested"):
        ds.parse("(" * 150 + "x" + ")" * 150)
    with pytest.raises(ExpressionError, match="nested"):
        ds.parse("-" * 3000 + "x")


def test_point_from_text_reads_numbers_and_constant_expressions():
    assert point_from_text("x=1, y=-2.5,z=pi/2") == {"x": 1.0, "y": -2.5, "z": math.pi / 2}
    with pytest.raises(InputError, match="name=value"):
        point_from_text("x1")
    # One variable: a value alone is its value; several: each is named, with an example.
    assert point_from_text("3", ["x"]) == {"x": 3.0}
    assert point_from_text(" -pi ", ["t"]) == {"t": -math.pi}
    with pytest.raises(InputError, match=r"name each variable \(x, y\), e.g. x=1,y=2$"):
        point_from_text("1,2", ["x", "y"])
    with pytest.raises(InputError, match="name=value"):
        point_from_text("1,2", ["x"])
    with pytest.raises(InputError, match="not a variable"):
        point_from_text("q=1", ["x"])
    with pytest.raises(InputError, match="must be a number"):
        point_from_text("x=y")


def test_binding_errors_name_the_variables():
    expression = ds.parse("x + y")
    with pytest.raises(InputError, match="no value given for variable"):
        expression(1.0)
    with pytest.raises(InputError, match="'q' is not a variable"):
        expression(x=1.0, y=2.0, q=3.0)


ALPHABET = "xyz0123456789.+-*/^()_ ,'\"[]{}:;=!<>%@~&|abcdefghijklmnopqrstuvw\\\n\x00"
TOKENS = [
    "x",
    "y",
    "1",
    "2.5",
    "1e3",
    "+",
    "-",
    "*",
    "/",
    "**",
    "^",
    "(",
    ")",
    "sin(",
    "exp(",
    "log(",
    "pi",
    "e",
    "__",
    "import",
    ".",
    "lambda",
    "'",
    "[",
    "]",
    ",",
    "9**9**9",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(ALPHABET, max_size=60), st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
    )
)
def test_random_text_parses_or_raises_expression_error(text):
    try:
        expression = ds.parse(text)
    except ExpressionError:
        return
    assert all(name.isidentifier() and not name.startswith("_") for name in expression.variables)
    assert not set(expression.variables) & set(FUNCTION_NAMES)
    with jax.enable_x64(True):
        value = expression(**{name: 0.5 for name in expression.variables})
    assert jnp.shape(value) == ()
