"""JAX's persistent compilation cache: compiled programs kept on disk between processes.

Every ``descend train`` or ``descend minimize`` is a new process, and JAX compiles its
programs again in each one (the first epoch's compilation is most of a short run). With
the cache, a later run with the same shapes loads them instead. The command line turns
it on by default; the library never changes JAX's configuration by itself, and offers
the same as one call, :func:`use_compilation_cache`.

The folder is ``$DESCEND_CACHE_DIR`` when set, else the user's cache folder by the
platform's convention (``platformdirs.user_cache_dir("descend")``: ``~/.cache/descend``
on Linux, ``~/Library/Caches/descend`` on macOS, ``%LOCALAPPDATA%\\descend\\Cache`` on
Windows), in its ``jax`` subfolder. ``DESCEND_CACHE_DIR=off`` turns it off on the
command line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV = "DESCEND_CACHE_DIR"
OFF = ("off", "0", "none", "false", "no")


def default_dir() -> Path:
    """The cache folder when none is given: ``$DESCEND_CACHE_DIR``, else the user's
    cache folder's ``jax`` subfolder (``platformdirs``)."""
    given = os.environ.get(ENV, "").strip()
    if given and given.lower() not in OFF:
        return Path(given).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("descend")) / "jax"


def disabled_by_environment() -> bool:
    """Whether ``$DESCEND_CACHE_DIR`` says ``off`` (or ``0``, ``none``, ``false``, ``no``)."""
    return os.environ.get(ENV, "").strip().lower() in OFF


def use_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Keep JAX's compiled programs in ``path`` and reuse them in later processes.

    Parameters
    ----------
    path:
        The folder (created if missing); None: :func:`default_dir` (``$DESCEND_CACHE_DIR``,
        else the user's cache folder).

    Returns
    -------
    The folder in use, or None when it cannot be written: then a
    :class:`~descend.errors.DescendWarning` says why, JAX's configuration is left as it
    was, and everything runs as without the cache.

    Every program is cached, however fast it compiled (JAX's default skips programs
    that compile in under a second, which are most of descend's). This changes JAX's
    global configuration for the process (``jax_compilation_cache_dir`` and the
    thresholds), as ``jax.config.update`` does; ``import descend`` never does.
    """
    from descend.errors import DescendWarning, warn

    folder = Path(path).expanduser() if path is not None else default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        warn(
            f"cannot keep compiled programs in {str(folder)!r} ({reason}); running without "
            f"the compilation cache (give another folder, or set {ENV}=off)",
            DescendWarning,
        )
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


__all__ = ["ENV", "default_dir", "disabled_by_environment", "use_compilation_cache"]
