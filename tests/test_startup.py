"""Start-up: what `import descend` costs and changes, and the persistent compilation
cache the command line uses by default."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import descend as ds
from descend.errors import DescendWarning

# Optional or heavy packages that `import descend` must leave for first use.
HEAVY = ("sympy", "matplotlib", "pandas", "pyarrow", "rich", "scipy", "sklearn", "torch",
         "optax", "platformdirs", "tensorboardX", "tqdm", "IPython", "ipykernel", "nbformat",
         "nbclient")  # fmt: skip
HEAVY += ("mkdocs", "mkdocstrings", "griffe")  # the docs extra: the site's build only
HEAVY += ("starlette", "uvicorn", "plotly", "httpx", "multipart", "anyio")  # the web extra


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=300, env=environment,
    )  # fmt: skip


def test_import_descend_leaves_heavy_packages_and_jax_config_alone():
    done = python(f"""
        import json, sys
        import jax
        before = jax.config.jax_compilation_cache_dir
        import descend
        print(json.dumps({{
            "imported": [m for m in {HEAVY!r} if m in sys.modules],
            "cache_dir": [before, jax.config.jax_compilation_cache_dir],
        }}))
    """)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["imported"] == []
    assert report["cache_dir"][0] == report["cache_dir"][1]


def test_parsing_and_evaluating_do_not_need_sympy_and_derivatives_do():
    done = python("""
        import sys
        import descend as ds
        e = ds.parse("2*x**2 + 6*z**2 + 7*m**3 + sin(pi*x)")
        value = float(e(1.0, 1.0, 1.0))
        result = ds.minimize("(x-3)**2 + 10*(y+1)**2", verbose=0)
        print("sympy" in sys.modules, round(value, 6), [round(v, 4) for v in result.x.values()])
        print(e.derivatives["m"], "sympy" in sys.modules)
    """)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "False 15.0 [3.0, -1.0]"
    assert second == "21*m**2 True"


@pytest.fixture
def jax_cache_config():
    """Restore JAX's cache settings after a test that changes them."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")  # fmt: skip
    saved = {key: getattr(jax.config, key) for key in keys}
    yield
    for key, value in saved.items():
        jax.config.update(key, value)


def test_use_compilation_cache_keeps_programs_in_the_folder(tmp_path, jax_cache_config):
    folder = ds.use_compilation_cache(tmp_path / "programs")
    assert folder == tmp_path / "programs"
    assert jax.config.jax_compilation_cache_dir == str(folder)
    jax.jit(lambda x: x * 3.0 + 1.0)(jax.numpy.arange(7.0)).block_until_ready()
    assert any(name.endswith("-cache") for name in os.listdir(folder))


def test_an_unwritable_folder_is_a_warning_and_changes_nothing(tmp_path, jax_cache_config):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    before = jax.config.jax_compilation_cache_dir
    with pytest.warns(DescendWarning, match="running without the compilation cache"):
        assert ds.use_compilation_cache(blocked / "programs") is None
    assert jax.config.jax_compilation_cache_dir == before


def test_the_default_folder_follows_the_environment(tmp_path, monkeypatch):
    from descend import cache

    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path / "here"))
    assert cache.default_dir() == tmp_path / "here"
    monkeypatch.setenv("DESCEND_CACHE_DIR", "off")
    assert cache.disabled_by_environment()
    import platformdirs

    assert cache.default_dir() == (
        platformdirs.user_cache_path("descend") / "jax"
    )  # the platform's convention when the variable names no folder


def run_cli(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "descend", *argv], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env},
    )  # fmt: skip


def test_the_command_line_caches_by_default_and_obeys_the_switches(tmp_path):
    home = tmp_path / "home"
    common = ["minimize", "(x-3)**2", "--json"]
    env = {"XDG_CACHE_HOME": str(home), "HOME": str(home), "DESCEND_CACHE_DIR": ""}
    done = run_cli(*common, **env)  # no flag, no variable: the user's cache folder
    assert done.returncode == 0, done.stderr
    default = home / "descend" / "jax"
    assert any(name.endswith("-cache") for name in os.listdir(default))

    moved = tmp_path / "moved"
    assert run_cli(*common, DESCEND_CACHE_DIR=str(moved)).returncode == 0
    assert any(name.endswith("-cache") for name in os.listdir(moved))

    given = tmp_path / "given"
    assert run_cli(*common, "--cache-dir", str(given), DESCEND_CACHE_DIR="off").returncode == 0
    assert os.listdir(given)

    quiet = tmp_path / "quiet"
    assert run_cli(*common, "--no-cache", DESCEND_CACHE_DIR=str(quiet)).returncode == 0
    assert not quiet.exists()
    assert run_cli(*common, DESCEND_CACHE_DIR="off", XDG_CACHE_HOME=str(tmp_path / "x"),
                   HOME=str(tmp_path / "x")).returncode == 0  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_an_unwritable_cache_folder_is_one_warning_line_and_the_run_goes_on(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done = run_cli("minimize", "(x-3)**2", "--json", "--cache-dir", str(blocked / "programs"))
    assert done.returncode == 0
    assert json.loads(done.stdout)["converged"] is True
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("descend: warning: cannot keep compiled programs in")
    both = run_cli("minimize", "x**2", "--cache-dir", str(tmp_path), "--no-cache")
    assert both.returncode == 2 and "give --cache-dir or --no-cache, not both" in both.stderr


# Every optimizer's state is made without compiling: each small XLA program compiled
# eagerly (a zero, a one, a cast) costs 5-40 ms of a command's first call. The one
# program allowed is `copy`, once per shape: a state that starts from the params holds a
# copy of them (a buffer of its own, for donation), made by jnp.copy because it is
# dispatched without waiting for the params. These three compute from the params or draw
# a random key at init, which needs a program.
COMPILE_AT_INIT = {
    "dog": "the heuristic r_eps is a norm of the params",
    "noisy_sgd": "the random key",
    "sophia": "the random key",
}


def _programs_while(make_state) -> list[str]:
    """The JAX programs lowered (so compiled, or read from a cache) by ``make_state()``:
    jitted functions and single operations run eagerly alike."""
    traced: list[str] = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            traced.append(kwargs.get("fun_name", "?").removeprefix("jit(").removesuffix(")"))

    jax.clear_caches()
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        make_state()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return traced


def _param_trees():
    yield jax.device_put(np.zeros(3, np.float32))
    yield {"w": jax.device_put(np.ones((3, 2), np.float32)), "b": jax.device_put(np.zeros(2))}


@pytest.mark.parametrize("name", ds.optim.names())
def test_making_an_optimizer_state_compiles_nothing(name):
    if name in COMPILE_AT_INIT:
        pytest.skip(COMPILE_AT_INIT[name])
    optimizer = ds.optim.get(name, lr=0.1) if name in ("sam", "mechanize") else ds.optim.get(name)
    matrices = name in ("muon",)  # muon takes 2-D weights only
    trees = [jax.device_put(np.ones((3, 2), np.float32))] if matrices else list(_param_trees())
    for params in trees:
        programs = _programs_while(functools.partial(optimizer.init, params))
        assert set(programs) <= {"copy"}, (programs, params)


def test_wrappers_make_their_states_without_compiling():
    optim = ds.optim
    wrappers = [
        optim.reduce_on_plateau(optim.adam()),
        optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(lr=0.1)),
        optim.inject_hyperparams(optim.adam(lr=0.1), ["lr", "betas"]),
        optim.partition(
            {"w": optim.adam(), "b": optim.sgd(lr=0.1)},
            lambda path, leaf: "w" if leaf.ndim == 2 else "b",
        ),
    ]
    params = list(_param_trees())[1]
    for wrapper in wrappers:
        programs = _programs_while(functools.partial(wrapper.init, params))
        assert set(programs) <= {"copy"}, (programs, wrapper.name)


def test_a_first_fit_compiles_its_epoch_and_one_program_after_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    optimizer = ds.optim.reduce_on_plateau(ds.optim.adam(lr=0.01), patience=2)

    def fit():
        ds.fit("logistic", X, y, optimizer=optimizer, batch_size=32, epochs=3, verbose=0)

    # The validation score and the plateau rule's update are one program, not two; the
    # next rate (the rate times the plateau's scale) is the one multiply left on the host,
    # where every other path computes the rates the history records.
    assert sorted(set(_programs_while(fit))) == ["_after_epoch", "_run_epoch", "multiply"]


def test_the_first_epoch_time_holds_its_compilation():
    # The first record says "with compiling": its clock starts before the call that
    # compiles the epoch program, not after it (it read 0.003 s with 1.5 s of compiling).
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 1] > 0).astype(np.float32)
    compiled: list[float] = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/") and kwargs.get("fun_name") in (
            "_run_epoch", "jit(_run_epoch)"
        ):  # fmt: skip
            compiled.append(duration)

    jax.clear_caches()
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:  # with validation rows: one program an epoch (a stretch shares its time out)
        result = ds.fit("logistic", X, y, epochs=3, verbose=0, validation_split=0.2)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiled and result.history["time"][0] >= sum(compiled)
