"""Coverage-guided fuzzing of the expression parser with atheris.

Run: python tests/fuzz/parse_fuzzer.py -runs=20000 -max_len=300
Any exception other than descend's ExpressionError is a crash (atheris exits non-zero),
and so is a hang past -timeout.
"""

import sys

import atheris

with atheris.instrument_imports():
    from descend.errors import ExpressionError
    from descend.expr import parse


def test_one_input(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(400)
    try:
        expression = parse(text)
    except ExpressionError:
        return
    assert all(not name.startswith("_") for name in expression.variables)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
