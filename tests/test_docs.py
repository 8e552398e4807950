"""The documentation site: its code runs, and it builds without a warning.

Every ```python block of the pages in docs/ runs, page by page in one namespace, in
order (as a reader would paste them), in a fresh folder; the gallery's blocks run in
the build, which draws its pictures with them (docs/hooks.py). The ```console blocks of the
command-line page run their ``descend ...`` lines through ``descend.cli.main``. The
strict build (``mkdocs build --strict``, which also draws the gallery) is slow and
needs the ``docs`` extra: it runs when mkdocs is installed, and CI runs it in
``.ci/run`` as well.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import descend.cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(path for path in DOCS.rglob("*.md") if "reference" not in path.parts)
GALLERY = DOCS / "gallery.md"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(page: Path, language: str) -> list[str]:
    """The code of the fenced blocks of ``language`` in ``page``, in order."""
    return [code for lang, code in FENCE.findall(page.read_text()) if lang == language]


def test_the_block_reader_finds_fenced_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n\n```python\ny = 2\n```\n")
    assert blocks(page, "python") == ["x = 1\n", "y = 2\n"]
    assert blocks(page, "bash") == ["ls\n"]


def test_the_pages_have_python_code():
    # The tutorial and every how-to page but the command line's show Python.
    with_code = {page.relative_to(DOCS).as_posix() for page in PAGES if blocks(page, "python")}
    assert {"tutorial.md", "how-to/minimize.md", "how-to/fit.md", "how-to/optimizers.md",
            "how-to/scaling.md", "how-to/sklearn.md"} <= with_code  # fmt: skip


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if blocks(p, "python") and p != GALLERY],
    ids=lambda p: p.relative_to(DOCS).as_posix(),
)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for number, code in enumerate(blocks(page, "python"), start=1):
        try:
            exec(compile(code, f"{page.name}, block {number}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{page.name}, block {number} failed:\n{code}") from error


def test_command_line_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = [
        line.split("  #")[0]
        for code in blocks(DOCS / "how-to" / "cli.md", "console")
        for line in code.splitlines()
        if line.startswith("descend ")
    ]
    assert len(commands) >= 5
    for command in commands:
        status = descend.cli.main(shlex.split(command)[1:])
        assert status == 0, f"{command!r} exited with {status}: {capsys.readouterr().err}"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="needs the docs extra")
def test_the_site_builds_without_warnings(tmp_path):
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": path, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    for name in ("tangents", "rosenbrock-paths", "race", "himmelblau", "loss-curves", "methods"):
        assert (tmp_path / "gallery" / f"{name}.png").stat().st_size > 0
    assert "benchmarks" in (tmp_path / "benchmarks" / "RESULTS" / "index.html").read_text()
