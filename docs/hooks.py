"""MkDocs hooks: the gallery's pictures and the benchmark results, made at build time.

- The gallery (``docs/gallery.md``) shows pictures that descend draws during the build,
  never files committed by hand: the hook runs the page's code blocks, in order, and
  saves the Figure each one ends with under the name of the image that follows it.
  They are written to ``build/docs-gallery/<key>/gallery/`` (git-ignored, outside
  ``docs/`` so that ``mkdocs serve`` does not rebuild in a loop) and added to the site
  as ``gallery/*.png``. ``<key>`` is a hash of descend's sources, of the gallery page
  and of this file: a rebuild with unchanged code reuses them.
- The benchmark reports (``benchmarks/RESULTS.md``, ``RESULTS-gpu.md`` and the pictures
  they show) are read from ``benchmarks/`` at every build and added as pages of the site,
  so the site shows the files that ``python -m benchmarks`` wrote, as they are.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import re
import sys
import time
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
GALLERY_PAGE = ROOT / "docs" / "gallery.md"
GALLERY_CACHE = ROOT / "build" / "docs-gallery"
BENCHMARK_FILES = ("RESULTS.md", "RESULTS-gpu.md", "scaling.png", "scaling-gpu.png",
                   "mgh-profile.png")  # fmt: skip

log = logging.getLogger("mkdocs.hooks.gallery")


PICTURE = re.compile(r"^```python\n(.*?)^```\n+!\[[^\]]*\]\(gallery/([\w.-]+)\)", re.M | re.S)


def pictures() -> list[tuple[str, str]]:
    """``[(code, file name)]``: each code block of the gallery page and the picture after it.

    The page's code is the code that draws its pictures: each block's last expression is
    the Figure saved under the name of the image that follows the block.
    """
    return [(code, name) for code, name in PICTURE.findall(GALLERY_PAGE.read_text())]


def _draw(code: str, path: Path, namespace: dict) -> None:
    tree = ast.parse(code)
    last = tree.body.pop()
    if not isinstance(last, ast.Expr):
        raise ValueError(f"the gallery's block for {path.name} must end with the figure")
    exec(compile(tree, f"gallery.md ({path.name})", "exec"), namespace)
    figure = eval(compile(ast.Expression(last.value), f"gallery.md ({path.name})", "eval"),
                  namespace)  # fmt: skip
    namespace["ds"].plot.save(figure, path)


def _key() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes() + GALLERY_PAGE.read_bytes())
    for source in sorted(SOURCE.rglob("*.py")):
        digest.update(source.relative_to(SOURCE).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def draw_gallery() -> Path:
    """The folder holding every picture of the gallery, drawn unless already drawn."""
    folder = GALLERY_CACHE / _key() / "gallery"
    if all((folder / name).exists() for _, name in pictures()):
        return folder
    # The descend of this checkout, whatever else the environment has installed.
    sys.path.insert(0, str(SOURCE))
    folder.mkdir(parents=True, exist_ok=True)
    namespace: dict = {"__name__": "__gallery__"}
    for code, name in pictures():
        start = time.perf_counter()
        _draw(code, folder / name, namespace)
        log.info("gallery: drew %s in %.1f s", name, time.perf_counter() - start)
    return folder


def on_files(files: Files, config) -> Files:
    site_dir, urls = config["site_dir"], config["use_directory_urls"]
    gallery = draw_gallery()
    for _, name in pictures():
        files.append(File(f"gallery/{name}", src_dir=str(gallery.parent), dest_dir=site_dir,
                          use_directory_urls=urls))  # fmt: skip
    for name in BENCHMARK_FILES:
        if (ROOT / "benchmarks" / name).exists():
            files.append(File(f"benchmarks/{name}", src_dir=str(ROOT), dest_dir=site_dir,
                              use_directory_urls=urls))  # fmt: skip
    return files
