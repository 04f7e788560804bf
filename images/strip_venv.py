"""Remove what an executor image's runtime never loads from a virtual environment, then compile bytecode.

Runs in the builder stage of every Dockerfile in ``Dockerfiles/``, with the venv's own interpreter:
``python strip_venv.py /opt/taskbox``. What goes (issue 6, "strip what the runtime never loads"):

* pip, setuptools and wheel (the runtime installs nothing);
* test folders, C/C++ headers and sources, Cython sources;
* pyarrow components taskbox never uses (Flight, its own S3/GCS/Azure/HDFS filesystems, ORC, the
  C++ test module) and the duplicate copies of shared libraries that wheels carry instead of symlinks;
* botocore's models of every AWS service but S3 and the STS/SSO credential services;
* test-suite support packages that only a library's own tests import (:data:`TEST_SUPPORT`:
  ``sqlalchemy.testing``, 2.1 MB, which kept the ``sql`` image within its budget once the Azure client joined).

Then every module is compiled with ``--invalidation-mode unchecked-hash``: a non-root user on a read-only
root filesystem cannot write ``__pycache__``, and unchecked pycs are used whatever the file times are.
"""

from __future__ import annotations

import compileall
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGING_TOOLS = ("pip", "setuptools", "wheel")
TEST_DIRS = {"tests", "test", "testing_data"}
SOURCE_SUFFIXES = {".h", ".hpp", ".c", ".cc", ".cpp", ".pxd", ".pyx", ".pxi"}
PYARROW_UNUSED = (
    "libarrow_flight.so*",
    "libarrow_python_flight.so*",
    "_flight.*.so",
    "libarrow_s3.so*",
    "_s3fs.*.so",
    "_gcsfs.*.so",
    "_azurefs.*.so",
    "_hdfs.*.so",
    "_orc.*.so",
    "_dataset_orc.*.so",
    "_pyarrow_cpp_tests.*.so",
)
BOTOCORE_KEPT = {"s3", "sts", "sso", "sso-oidc"}
#: Packages' test-suite helpers (imported by their test plugins, never at run time).
TEST_SUPPORT = ("sqlalchemy/testing",)


def site_packages(venv: Path) -> Path:
    """Return the venv's only site-packages folder."""
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


def remove(path: Path) -> None:
    """Remove a file, symlink or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def uninstall_packaging_tools(venv: Path) -> None:
    """Pip uninstalls setuptools and wheel, then itself; its console scripts go with it."""
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", *PACKAGING_TOOLS], check=True)


def strip_sources(site: Path) -> None:
    """Drop test folders, headers and C/Cython sources."""
    for path in sorted(site.rglob("*"), reverse=True):
        if not path.exists() or path.parent == site:
            continue
        if path.is_dir() and path.name in TEST_DIRS or path.is_dir() and path.name == "include":
            remove(path)
        elif path.is_file() and path.suffix in SOURCE_SUFFIXES:
            remove(path)


def strip_pyarrow(site: Path) -> None:
    """Drop unused Arrow components and turn duplicate shared-library copies into symlinks."""
    pyarrow = site / "pyarrow"
    if not pyarrow.is_dir():
        return
    for pattern in PYARROW_UNUSED:
        for path in pyarrow.glob(pattern):
            remove(path)
    for src in ("src",):
        if (pyarrow / src).is_dir():
            remove(pyarrow / src)
    libraries = sorted(p for p in pyarrow.glob("lib*.so*") if p.is_file() and not p.is_symlink())
    for lib in libraries:
        stem = lib.name.split(".so", 1)[0]
        sonames = [p for p in libraries if p.name.startswith(f"{stem}.so.") and p.name.count(".") == 2]
        if not sonames or lib in sonames or not lib.exists():
            continue
        target = sonames[0]
        if filecmp.cmp(lib, target, shallow=False):
            lib.unlink()
            lib.symlink_to(target.name)


def strip_test_support(site: Path) -> None:
    """Drop the test-suite helper packages of :data:`TEST_SUPPORT` that are installed."""
    for relative in TEST_SUPPORT:
        if (site / relative).is_dir():
            remove(site / relative)


def strip_botocore(site: Path) -> None:
    """Keep botocore's S3 and credential-service models and its shared data files only."""
    data = site / "botocore" / "data"
    if not data.is_dir():
        return
    for path in data.iterdir():
        if path.is_dir() and path.name not in BOTOCORE_KEPT:
            remove(path)


def compile_bytecode(venv: Path) -> None:
    """Compile every module once, unchecked, so no import ever needs to write ``__pycache__``."""
    for cache in venv.rglob("__pycache__"):
        remove(cache)
    ok = compileall.compile_dir(
        venv / "lib",
        quiet=1,
        workers=0,
        invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        sys.exit("strip_venv: some modules do not compile")


def main(argv: list[str]) -> int:
    """Strip and compile the venv named by ``argv[1]``."""
    venv = Path(argv[1])
    uninstall_packaging_tools(venv)
    site = site_packages(venv)
    strip_sources(site)
    strip_pyarrow(site)
    strip_botocore(site)
    strip_test_support(site)
    compile_bytecode(venv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
