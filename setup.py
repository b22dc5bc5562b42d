"""Build the Cython extensions of fastgrad (every ``fastgrad/_cython/*.pyx``).

Compiled with -O3 and OpenMP when the compiler supports it; without OpenMP a
serial build is made and a warning says so.  The extensions are optional: with
no working C compiler (or a failed build) fastgrad installs without them, a
warning says so, and the Numba and numpy backends work as usual.  Floating-point flags allow
re-association and FMA contraction (so reductions vectorise) but never
``-ffinite-math-only``: NaN and Inf must propagate.

Environment:
  FASTGRAD_NO_OPENMP=1        build without OpenMP even if available
  FASTGRAD_PORTABLE_BUILD=1   do not add -march=native (for wheels run elsewhere)
  FASTGRAD_BUILD_JOBS=n       translate and compile with n parallel jobs (default: every core)
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from glob import glob

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FP_FLAGS = ["-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros",
            "-ffp-contract=fast"]
LOOP_ALIGN = "-falign-loops=32"


def _compiler() -> str:
    cc = os.environ.get("CC") or (sysconfig.get_config_var("CC") or "").split(" ")[0] or "cc"
    return cc.split()[0] if cc.strip() else "cc"


NO_CYTHON = (
    "fastgrad: {why}; installing WITHOUT the optional Cython backend. The 'numba' and 'numpy' "
    "backends work as usual. To add the Cython backend, install a C compiler (e.g. gcc) and "
    "reinstall fastgrad from its source folder: pip install --force-reinstall --no-deps ."
)


def _jobs() -> int:
    """Parallel jobs for translating and compiling the extensions: every core (FASTGRAD_BUILD_JOBS overrides)."""
    try:
        return max(1, int(os.environ.get("FASTGRAD_BUILD_JOBS", "") or os.cpu_count() or 1))
    except ValueError:
        return max(1, os.cpu_count() or 1)


class OptionalBuildExt(build_ext):
    """Build the Cython extensions if possible; never fail the install because of them."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None and _jobs() > 1:
            self.parallel = _jobs()  # compile the extensions side by side

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves a working pure-Python install
            warnings.warn(NO_CYTHON.format(why=f"building the Cython extensions failed ({exc})"), stacklevel=1)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(NO_CYTHON.format(why=f"building {ext.name} failed ({exc})"), stacklevel=1)


def _accepts(flags: list[str], link: bool = False) -> bool:
    """True if the C compiler builds a tiny OpenMP-aware program with ``flags``."""
    cc = _compiler()
    if shutil.which(cc) is None:
        return False
    src = "#include <stdio.h>\n#ifdef _OPENMP\n#include <omp.h>\n#endif\nint main(void){return 0;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c = os.path.join(tmp, "t.c")
        with open(c, "w") as fh:
            fh.write(src)
        cmd = [cc, c, "-o", os.path.join(tmp, "t"), *flags]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def _flags() -> tuple[list[str], list[str]]:
    if sys.platform == "win32":  # MSVC
        return ["/O2", "/openmp"], []
    compile_args = ["-O3", *[f for f in FP_FLAGS if _accepts([f])]]
    # Loops start on a 32-byte boundary, so that a short inner loop never straddles a 64-byte
    # line: the Kronecker kernel's machine code, unchanged, ran 1.4-1.6x slower after an edit
    # elsewhere in its module moved its 19-byte inner loop across one (0.36 -> 0.55 ms for a
    # 9.6 MB output); aligned, it runs at the old speed wherever it lands.
    if _accepts([LOOP_ALIGN]):
        compile_args.append(LOOP_ALIGN)
    if os.environ.get("FASTGRAD_PORTABLE_BUILD") != "1" and _accepts(["-march=native"]):
        compile_args.append("-march=native")
    link_args: list[str] = []
    if os.environ.get("FASTGRAD_NO_OPENMP") == "1":
        warnings.warn("fastgrad: FASTGRAD_NO_OPENMP=1, building the Cython kernels serial", stacklevel=1)
    elif _accepts(["-fopenmp"]):
        compile_args.append("-fopenmp")
        link_args.append("-fopenmp")
    else:
        warnings.warn(
            "fastgrad: the C compiler does not support OpenMP (-fopenmp); building the Cython "
            "kernels SERIAL. They stay correct but use one thread.",
            stacklevel=1,
        )
    return compile_args, link_args


def _extensions() -> list:
    if sys.platform != "win32" and shutil.which(_compiler()) is None:
        warnings.warn(NO_CYTHON.format(why=f"no C compiler found (tried {_compiler()!r}; set CC)"), stacklevel=1)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        warnings.warn(NO_CYTHON.format(why="Cython is not installed"), stacklevel=1)
        return []
    compile_args, link_args = _flags()
    extensions = [
        Extension(
            "fastgrad._cython." + os.path.splitext(os.path.basename(pyx))[0],
            [pyx],
            include_dirs=[np.get_include()],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for pyx in sorted(glob(os.path.join("fastgrad", "_cython", "*.pyx")))
    ]
    try:
        return _cythonize(cythonize, extensions)
    except Exception as exc:  # noqa: BLE001 - a Cython error leaves a working pure-Python install
        warnings.warn(NO_CYTHON.format(why=f"Cython could not translate the kernels ({exc})"), stacklevel=1)
        return []


def _cythonize(cythonize, extensions):
    return cythonize(
        extensions,
        nthreads=_jobs() if _jobs() > 1 else 0,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
        },
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
