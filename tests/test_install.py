"""Installing fastgrad as users do: no C compiler, a read-only install, the README's two commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _source_copy(dest: Path) -> Path:
    """The project's tracked files (as a clean clone has them) copied to ``dest``."""
    try:
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                               timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover - not a git checkout
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def _wheel(src: Path, out: Path, **env) -> tuple[Path, str]:
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=900,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return next(out.glob("fastgrad-*.whl")), r.stdout + r.stderr


@pytest.mark.slow
def test_installs_and_works_without_a_c_compiler(tmp_path):
    src = _source_copy(tmp_path / "src")
    whl, log = _wheel(src, tmp_path / "dist", CC=str(tmp_path / "no-such-compiler"))
    names = zipfile.ZipFile(whl).namelist()
    assert not [n for n in names if n.endswith((".so", ".pyd"))], names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(whl)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import numpy as np, fastgrad\n"
        "assert fastgrad.available_backends() == ['numba', 'numpy'], fastgrad.available_backends()\n"
        "assert fastgrad.get_backend() == 'numba'\n"
        "A = np.arange(6.).reshape(3, 2)\n"
        "for b in ('numba', 'numpy'):\n"
        "    assert fastgrad.mse_grad(A, np.ones(3), np.zeros(2), backend=b).tolist() == [-4.0, -6.0]\n"
        "from fastgrad.cli import main\n"
        "main(['info'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cython build" in r.stdout and "not built" in r.stdout and "install a C compiler" in r.stdout
    assert re.search(r"default backend\s+numba", r.stdout), r.stdout


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, timeout=300)
    return path / "bin"


@pytest.mark.slow
def test_readme_set_up_commands_in_order_in_one_environment(tmp_path):
    # the README's first command (install, run the demo), then its second (editable install with the
    # test extras, run the tests) in the same environment: the demo must leave nothing in the installed
    # package that shadows the editable install afterwards
    src = _source_copy(tmp_path / "src")
    bin_ = _venv(tmp_path / "venv")
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(bin_.parent),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("PYTHONPATH", None)

    def sh(cmd: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        r = subprocess.run(["bash", "-c", cmd], cwd=src, env=env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    sh('pip install -q ".[all]" && fastgrad demo --no-plot --epochs 50')
    # (from another folder: with -c, Python puts the current folder first on sys.path)
    site = Path(sh("cd / && python -c 'import fastgrad, os; print(os.path.dirname(fastgrad.__file__))'")
                .stdout.strip())
    assert site != src / "fastgrad"
    # (the one test of test_config.py that compiles kernels in a fresh interpreter runs in the suite itself)
    sh('pip install -q -e ".[test,all]" && python -m pytest -q -p no:cacheprovider tests/test_config.py '
       '-k "not parallel_targets"')
    assert not site.exists() or not any(site.rglob("*")), sorted(map(str, site.rglob("*")))[:20]
    r = sh("cd / && python -c 'import fastgrad; print(fastgrad.__file__, fastgrad.available_backends())' "
           "&& fastgrad info")
    assert str(src / "fastgrad" / "__init__.py") in r.stdout
    assert "cython" in r.stdout


READ_ONLY = """
import warnings, numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastgrad
    # Numba is set up (and the cache found off) on its first use, not at import
    assert not [w for w in caught if "cache" in str(w.message)]
    A = np.arange(6.).reshape(3, 2)
    for b in fastgrad.available_backends():
        assert fastgrad.mse_grad(A, np.ones(3), np.zeros(2), backend=b).tolist() == [-4.0, -6.0], b
    from numba import njit
    f = njit(lambda x: (x ** 2).sum())
    x = np.arange(4000.0) / 1000  # work enough to compile numgrad's driver (smaller calls run f from Python)
    assert np.allclose(fastgrad.numgrad(f, x), 2 * x)
    from fastgrad.cli import main
    assert main(["info"]) == 0
    {check}
msgs = [str(w.message) for w in caught if "cache" in str(w.message)]
assert len(msgs) == 1 and "on-disk cache is off" in msgs[0], msgs
print("read-only ok")
"""
# every public function on every backend with the cache off (compiles every Numba kernel: about a minute)
CHECK_ALL = 'assert main(["check"]) == 0'


@pytest.mark.slow
def test_read_only_install_as_a_user_with_no_home(tmp_path):
    # an unprivileged user, the package and every folder it could cache in read-only, no home at all
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as the unprivileged user 'nobody'")
    script = Path("/tmp") / f"fastgrad-readonly-{os.getpid()}.py"
    script.write_text(READ_ONLY.format(check=CHECK_ALL))
    script.chmod(0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                            "import fastgrad"], capture_output=True, text=True, timeout=300, env=env)
    if probe.returncode != 0 and ("Permission denied" in probe.stderr or "No module named" in probe.stderr):
        script.unlink()
        pytest.skip(f"user 'nobody' cannot read this installation: {probe.stderr.strip()[-200:]}")
    try:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                            str(script)], capture_output=True, text=True, timeout=900, env=env, cwd="/")
    finally:
        script.unlink()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "read-only ok" in r.stdout
    assert "numba cache dir" in r.stdout and "off:" in r.stdout


def test_no_writable_home_means_no_cache_one_warning_and_nothing_written(tmp_path):
    # what a read-only container sees even as root: no folder to cache in (procfs refuses mkdir);
    # fastgrad must warn once, work, report it truthfully, and write nothing inside the package
    pkg = ROOT / "fastgrad"
    before = {p for p in pkg.rglob("*") if "__pycache__" not in p.parts or p.suffix in (".nbi", ".nbc")}
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = "/proc/fastgrad-no-home"
    r = subprocess.run([sys.executable, "-c", READ_ONLY.format(check="pass")], capture_output=True, text=True,
                       timeout=900, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "numba cache dir" in r.stdout and "off: " in r.stdout
    after = {p for p in pkg.rglob("*") if "__pycache__" not in p.parts or p.suffix in (".nbi", ".nbc")}
    assert after == before, sorted(map(str, after - before))
