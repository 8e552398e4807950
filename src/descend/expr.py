"""Mathematical expressions as text, parsed safely into JAX functions and SymPy terms.

Text from a user (or the command line) is parsed with :mod:`ast` and walked with an
allow-list: numbers, variable names, ``+ - * / **`` (``^`` is read as ``**``), unary
minus and plus, parentheses, the constants ``pi`` and ``e`` and one-argument calls of
``sin cos tan exp log sqrt abs tanh sinh cosh arcsin arccos arctan``. Anything else is
refused with an :class:`~descend.errors.ExpressionError` that points at the column.
The text is never given to ``eval``, ``exec`` or SymPy's string parsers: the JAX
function and the SymPy expression are both built node by node from the checked tree.

>>> import descend as ds
>>> expression = ds.parse("2*x**2 + 6*z**2 + 7*m**3")
>>> expression.variables
('x', 'z', 'm')
>>> expression.derivatives
{'x': '4*x', 'z': '12*z', 'm': '21*m**2'}
>>> float(expression(x=1.0, z=1.0, m=1.0))
15.0
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jax.numpy as jnp

from descend.errors import ExpressionError, InputError

MAX_LENGTH = 10_000
MAX_DEPTH = 100
# Constant powers are folded by SymPy in exact arithmetic; these bounds keep that fast.
MAX_CONSTANT_EXPONENT = 1_000
MAX_INTEGER_DIGITS = 100

# Each function in JAX, and the name of its SymPy counterpart (SymPy is imported when a
# symbolic form is first asked for: parsing and evaluating never need it).
_FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "sin": (jnp.sin, "sin"),
    "cos": (jnp.cos, "cos"),
    "tan": (jnp.tan, "tan"),
    "exp": (jnp.exp, "exp"),
    "log": (jnp.log, "log"),
    "sqrt": (jnp.sqrt, "sqrt"),
    "abs": (jnp.abs, "Abs"),
    "tanh": (jnp.tanh, "tanh"),
    "sinh": (jnp.sinh, "sinh"),
    "cosh": (jnp.cosh, "cosh"),
    "arcsin": (jnp.arcsin, "asin"),
    "arccos": (jnp.arccos, "acos"),
    "arctan": (jnp.arctan, "atan"),
}
_CONSTANTS: dict[str, tuple[float, str]] = {"pi": (math.pi, "pi"), "e": (math.e, "E")}


def _sympy() -> Any:
    import sympy

    return sympy


_BINARY = {
    ast.Add: ("+", lambda a, b: a + b),
    ast.Sub: ("-", lambda a, b: a - b),
    ast.Mult: ("*", lambda a, b: a * b),
    ast.Div: ("/", lambda a, b: a / b),
    ast.Pow: ("**", lambda a, b: a**b),
}
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}
_DESCRIBE = {
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.JoinedStr: "f-string",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment",
    ast.Starred: "star expression",
    ast.Tuple: "tuple",
    ast.List: "list",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.Await: "await",
    ast.Yield: "yield",
}

FUNCTION_NAMES = tuple(_FUNCTIONS)
CONSTANT_NAMES = tuple(_CONSTANTS)


@dataclass(frozen=True)
class _Node:
    """A checked expression node: how to evaluate it in JAX, and how to build its SymPy
    form (``symbolic()``, called only when a symbolic form is asked for)."""

    evaluate: Callable[[Mapping[str, Any]], Any]
    symbolic: Callable[[], Any]
    constant: float | None = None  # its value when it contains no variable


@dataclass(frozen=True, eq=False)
class Expression:
    """A parsed expression: its variables, a JAX function of them, and its symbolic form.

    Attributes
    ----------
    text:
        The text as given.
    variables:
        Variable names in order of first appearance.
    symbolic:
        The SymPy expression (built, and SymPy imported, when first asked for).
    """

    text: str
    variables: tuple[str, ...]
    _symbolic: Callable[[], Any] = field(repr=False)
    _evaluate: Callable[[Mapping[str, Any]], Any] = field(repr=False)

    @cached_property
    def symbolic(self) -> Any:
        return self._symbolic()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate at positional values (in ``variables`` order) or keyword values."""
        return self._evaluate(self.bind(*args, **kwargs))

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Map positional and keyword values to variable names, checking that all are given."""
        if len(args) > len(self.variables):
            raise InputError(
                f"{self.text!r} has {len(self.variables)} variable(s) "
                f"{list(self.variables)}, got {len(args)} values"
            )
        values = dict(zip(self.variables, args, strict=False))
        for name, value in kwargs.items():
            if name not in self.variables:
                raise InputError(
                    f"{name!r} is not a variable of {self.text!r} (its variables: "
                    f"{', '.join(self.variables) or 'none'})"
                )
            if name in values:
                raise InputError(f"variable {name!r} given twice")
            values[name] = value
        missing = [name for name in self.variables if name not in values]
        if missing:
            raise InputError(
                f"no value given for variable(s) {', '.join(missing)} of {self.text!r}"
            )
        return values

    def function(self) -> Callable[[Mapping[str, Any]], Any]:
        """The expression as a JAX function of one dict ``{variable: value}``."""
        return self._evaluate

    def vector_function(self) -> Callable[[Any], Any]:
        """The expression as a JAX function of one vector, entries in ``variables`` order.

        The same function object every call, so compiled loops over it are reused.
        """
        return self._of_vector

    @cached_property
    def _of_vector(self) -> Callable[[Any], Any]:
        names, evaluate = self.variables, self._evaluate

        def of_vector(x):
            return evaluate({name: x[i] for i, name in enumerate(names)})

        return of_vector

    @cached_property
    def derivatives(self) -> dict[str, str]:
        """Each partial derivative as text, e.g. ``{'x': '4*x'}`` (computed with SymPy)."""
        return {name: str(self.derivative(name)) for name in self.variables}

    def derivative(self, variable: str) -> Any:
        """The symbolic partial derivative with respect to ``variable`` (a SymPy expression)."""
        if variable not in self.variables:
            raise InputError(f"{variable!r} is not a variable of {self.text!r}")
        sympy = _sympy()
        return sympy.diff(self.symbolic, sympy.Symbol(variable, real=True))

    def __str__(self) -> str:
        return str(self.symbolic)


def parse(text: str, *, max_length: int = MAX_LENGTH, max_depth: int = MAX_DEPTH) -> Expression:
    """Parse ``text`` into an :class:`Expression`, allowing only the documented grammar.

    Raises
    ------
    ExpressionError
        For anything outside the grammar, with the offending part and its column;
        also for text longer than ``max_length`` or nested deeper than ``max_depth``.

    Examples
    --------
    >>> import descend as ds
    >>> ds.parse("sin(x)^2").derivatives
    {'x': '2*sin(x)*cos(x)'}
    >>> ds.parse("__import__('os')")
    Traceback (most recent call last):
    ...
    descend.errors.ExpressionError: unsupported name '__import__' at column 1
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}")
    if len(text) > max_length:
        raise ExpressionError(
            f"expression is {len(text)} characters long; the limit is {max_length}"
        )
    if not text.strip():
        raise ExpressionError("the expression is empty")
    source, columns = _caret_to_power(text)
    depth = _bracket_depth(source)
    if depth > max_depth:
        raise ExpressionError(f"parentheses nested {depth} deep; the limit is {max_depth}")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise _syntax_error(error, source, columns) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression nested too deeply; the limit is {max_depth}") from None
    except ValueError as error:  # e.g. a null byte
        raise ExpressionError(f"cannot read the expression: {error}") from None
    offset = len(source) - len(source.lstrip())
    builder = _Builder(text, columns, offset, max_depth)
    node = builder.build(tree.body, depth=0)
    variables = tuple(name for name, _ in sorted(builder.first_seen.items(), key=lambda kv: kv[1]))
    return Expression(
        text=text, variables=variables, _symbolic=node.symbolic, _evaluate=node.evaluate
    )


def _caret_to_power(text: str) -> tuple[str, list[int]]:
    """Replace ``^`` by ``**`` and keep, for each output character, its column in ``text``."""
    pieces: list[str] = []
    columns: list[int] = []
    for index, char in enumerate(text):
        if char == "^":
            pieces.append("**")
            columns.extend((index, index))
        else:
            pieces.append(char)
            columns.append(index)
    columns.append(len(text))
    return "".join(pieces), columns


def _bracket_depth(source: str) -> int:
    depth = deepest = 0
    for char in source:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _syntax_error(error: SyntaxError, source: str, columns: list[int]) -> ExpressionError:
    column = None
    text = source.rstrip()
    if error.offset == 0 and text:
        # Python reports an expression that ends too soon ("x**2 +") at offset 0: point
        # at its last character instead of its first.
        return ExpressionError(
            f"cannot read the expression: it ends after {text[-1]!r}, which needs "
            "something to follow it",
            columns[min(len(text) - 1, len(columns) - 1)] + 1,
        )
    if error.offset is not None and (error.lineno or 1) == 1:
        stripped = len(source) - len(source.lstrip())
        position = min(max(error.offset - 1 + stripped, 0), len(columns) - 1)
        column = columns[position] + 1
    reason = (error.msg or "invalid syntax").split(" (")[0]
    hint = ""
    if "decimal literal" in reason:
        hint = " (write products with *, e.g. 5*x**2)"
    return ExpressionError(f"cannot read the expression: {reason}{hint}", column)


class _Builder:
    """Walks a Python AST, refusing every node outside the grammar."""

    def __init__(self, text: str, columns: list[int], offset: int, max_depth: int):
        self.text = text
        self.columns = columns
        self.offset = offset
        self.max_depth = max_depth
        self.first_seen: dict[str, int] = {}

    def column(self, node: ast.AST) -> int | None:
        if getattr(node, "lineno", 1) != 1 or not hasattr(node, "col_offset"):
            return None
        position = min(node.col_offset + self.offset, len(self.columns) - 1)
        return self.columns[position] + 1

    def refuse(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(message, self.column(node))

    def build(self, node: ast.AST, depth: int) -> _Node:
        if depth > self.max_depth:
            raise self.refuse(f"expression nested deeper than {self.max_depth} levels", node)
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.binary(node, depth)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            operand = self.build(node.operand, depth + 1)
            apply = _UNARY[type(node.op)]
            constant = None if operand.constant is None else apply(operand.constant)
            return _Node(
                lambda env: apply(operand.evaluate(env)),
                lambda: apply(operand.symbolic()),
                constant,
            )
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            operator = type(node.op).__name__
            raise self.refuse(f"unsupported operator {operator}", node)
        description = _DESCRIBE.get(type(node), type(node).__name__)
        raise self.refuse(f"unsupported {description}", node)

    def number(self, node: ast.Constant) -> _Node:
        value = node.value
        if type(value) is int:
            if len(str(abs(value))) > MAX_INTEGER_DIGITS:
                raise self.refuse(f"integer with more than {MAX_INTEGER_DIGITS} digits", node)
            return _Node(lambda env: value, lambda: _sympy().Integer(value), float(value))
        if type(value) is float:
            if not math.isfinite(value):
                raise self.refuse("number too large to represent", node)
            return _Node(lambda env: value, lambda: _sympy().Float(value), value)
        kind = "string" if isinstance(value, (str, bytes)) else type(value).__name__
        raise self.refuse(f"unsupported {kind} constant {value!r}", node)

    def name(self, node: ast.Name) -> _Node:
        identifier = node.id
        if identifier in _CONSTANTS:
            number, symbol = _CONSTANTS[identifier]
            return _Node(lambda env: number, lambda: getattr(_sympy(), symbol), number)
        if identifier in _FUNCTIONS:
            raise self.refuse(f"function '{identifier}' must be called, e.g. {identifier}(x)", node)
        if identifier.startswith("_") or not identifier.isascii():
            raise self.refuse(f"unsupported name {identifier!r}", node)
        self.first_seen.setdefault(identifier, len(self.first_seen))
        # Real symbols: the variables are real numbers, so d|x|/dx is sign(x).
        return _Node(lambda env: env[identifier], lambda: _sympy().Symbol(identifier, real=True))

    def binary(self, node: ast.BinOp, depth: int) -> _Node:
        left = self.build(node.left, depth + 1)
        right = self.build(node.right, depth + 1)
        symbol, apply = _BINARY[type(node.op)]
        constant = None
        if left.constant is not None and right.constant is not None:
            constant = self.fold(symbol, left.constant, right.constant, node)
        if (
            symbol == "**"
            and right.constant is not None
            and (abs(right.constant) > MAX_CONSTANT_EXPONENT)
        ):
            raise self.refuse(
                f"exponent {right.constant:g} is too large (limit {MAX_CONSTANT_EXPONENT})", node
            )

        def symbolic():
            return apply(left.symbolic(), right.symbolic())

        return _Node(lambda env: apply(left.evaluate(env), right.evaluate(env)), symbolic, constant)

    def fold(self, symbol: str, a: float, b: float, node: ast.BinOp) -> float:
        """The value of a constant sub-expression, refusing results beyond float range."""
        try:
            if symbol == "**":
                if a != 0 and abs(b) * math.log10(abs(a)) > 300:
                    raise OverflowError
                value = float(abs(a) ** b if a < 0 and b != int(b) else a**b)
            else:
                value = float(_BINARY[type(node.op)][1](a, b))
        except ZeroDivisionError:
            raise self.refuse("division by zero", node) from None
        except OverflowError:
            raise self.refuse("constant too large to represent", node) from None
        if isinstance(value, complex) or not math.isfinite(value):
            return math.nan
        return value

    def call(self, node: ast.Call, depth: int) -> _Node:
        if not isinstance(node.func, ast.Name):
            description = _DESCRIBE.get(type(node.func), "call")
            raise self.refuse(f"unsupported {description}", node.func)
        name = node.func.id
        if name not in _FUNCTIONS:
            if name.startswith("_") or name in _CONSTANTS:
                raise self.refuse(f"unsupported name {name!r}", node.func)
            raise self.refuse(
                f"unsupported name {name!r} (functions: {', '.join(_FUNCTIONS)})", node.func
            )
        if node.keywords or len(node.args) != 1:
            raise self.refuse(f"{name}() takes exactly one argument", node)
        argument = self.build(node.args[0], depth + 1)
        jax_function, sympy_name = _FUNCTIONS[name]
        return _Node(
            lambda env: jax_function(argument.evaluate(env)),
            lambda: getattr(_sympy(), sympy_name)(argument.symbolic()),
        )


def point_from_text(text: str, names: Sequence[str] | None = None) -> dict[str, float]:
    """Read ``"x=1,y=-2.5"`` into ``{"x": 1.0, "y": -2.5}``.

    Values may be constant expressions (``x=pi/4``), parsed with :func:`parse`. With
    one variable in ``names``, a value alone (``"3"``) is that variable's; with several,
    each is named, so that no value lands on the wrong one.

    Raises
    ------
    InputError
        An item that is not ``name=value`` (a value alone where there are several
        variables), a name not in ``names`` or given twice, a value that is not a number.
    """
    point: dict[str, float] = {}
    items = [part.strip() for part in text.split(",") if part.strip()]
    if names is not None and len(names) == 1 and len(items) == 1 and "=" not in items[0]:
        items = [f"{names[0]}={items[0]}"]  # the one variable's value
    for item in items:
        name, sep, value_text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            fix = ""
            if names:
                example = ",".join(f"{n}={i + 1}" for i, n in enumerate(names[:3]))
                fix = f"; name each variable ({', '.join(names)}), e.g. {example}"
            raise InputError(f"expected name=value in {text!r}, got {item!r}{fix}")
        if names is not None and name not in names:
            raise InputError(f"{name!r} is not a variable (variables: {', '.join(names)})")
        if name in point:
            raise InputError(f"{name!r} is given twice in {text!r}")
        constant = parse(value_text.strip())
        if constant.variables:
            raise InputError(f"the value of {name} must be a number, got {value_text.strip()!r}")
        point[name] = float(constant())
    return point
