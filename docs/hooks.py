"""MkDocs hooks: the gallery's pictures and the benchmark results, made at build time.

- The gallery (``docs/gallery.md``) shows pictures that descend draws during the build
  (``PICTURES`` below), never files committed by hand. They are written to
  ``build/docs-gallery/<key>/gallery/`` (git-ignored, outside ``docs/`` so that ``mkdocs serve``
  does not rebuild in a loop) and added to the site as ``gallery/*.png``. ``<key>`` is a
  hash of descend's sources and of this file: a rebuild with unchanged code reuses them.
- The benchmark reports (``benchmarks/RESULTS.md``, ``RESULTS-gpu.md`` and the pictures
  they show) are read from ``benchmarks/`` at every build and added as pages of the site,
  so the site shows the files that ``python -m benchmarks`` wrote, as they are.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
GALLERY_CACHE = ROOT / "build" / "docs-gallery"
BENCHMARK_FILES = ("RESULTS.md", "RESULTS-gpu.md", "scaling.png", "scaling-gpu.png",
                   "mgh-profile.png")  # fmt: skip

log = logging.getLogger("mkdocs.hooks.gallery")


def _tangents(ds, path: Path) -> None:
    # The seed's first function, y = 5x^2 (derivative 10x), from x = 1 with a step
    # that overshoots: the derivative changes sign, a minimum lies between.
    result = ds.minimize("5*x**2", {"x": 1.0}, optimizer=ds.optim.gd(lr=0.15), refine=True)
    ds.plot.save(ds.plot.path(result, "5*x**2"), path)


def _path(ds, path: Path) -> None:
    runs = {
        "gd": ds.minimize("rosenbrock", optimizer="gd", verbose=0),
        "lbfgs": ds.minimize("rosenbrock", optimizer="lbfgs", verbose=0),
    }
    ds.plot.save(ds.plot.path(runs, "rosenbrock"), path)


def _race(ds, path: Path) -> None:
    race = ds.compare(
        "rosenbrock", ["gd", ("momentum", {"lr": 1e-3}), ("adam", {"lr": 0.02}), "lbfgs"],
        x0=(-1.5, 2),
    )  # fmt: skip
    ds.plot.save(ds.plot.race(race), path)


def _himmelblau(ds, path: Path) -> None:
    ds.plot.save(ds.plot.function("himmelblau"), path)


def _loss_curves(ds, path: Path) -> None:
    data = ds.data.load_dataset("breast_cancer")
    result = ds.fit("logistic", data, epochs=40, verbose=0)
    ds.plot.save(ds.plot.loss_curves(result), path)


# name -> (what it shows, how it is drawn); the gallery page shows each by its name.
PICTURES = {
    "tangents.png": _tangents,
    "rosenbrock-paths.png": _path,
    "race.png": _race,
    "himmelblau.png": _himmelblau,
    "loss-curves.png": _loss_curves,
}


def _key() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for source in sorted(SOURCE.rglob("*.py")):
        digest.update(source.relative_to(SOURCE).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def draw_gallery() -> Path:
    """The folder holding every picture of ``PICTURES``, drawn unless already drawn."""
    folder = GALLERY_CACHE / _key() / "gallery"
    if all((folder / name).exists() for name in PICTURES):
        return folder
    # The descend of this checkout, whatever else the environment has installed.
    sys.path.insert(0, str(SOURCE))
    import descend as ds

    folder.mkdir(parents=True, exist_ok=True)
    for name, draw in PICTURES.items():
        start = time.perf_counter()
        draw(ds, folder / name)
        log.info("gallery: drew %s in %.1f s", name, time.perf_counter() - start)
    return folder


def on_files(files: Files, config) -> Files:
    site_dir, urls = config["site_dir"], config["use_directory_urls"]
    gallery = draw_gallery()
    for name in PICTURES:
        files.append(File(f"gallery/{name}", src_dir=str(gallery.parent), dest_dir=site_dir,
                          use_directory_urls=urls))  # fmt: skip
    for name in BENCHMARK_FILES:
        if (ROOT / "benchmarks" / name).exists():
            files.append(File(f"benchmarks/{name}", src_dir=str(ROOT), dest_dir=site_dir,
                              use_directory_urls=urls))  # fmt: skip
    return files
