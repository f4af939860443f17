"""llama.cpp's own binaries (``llama-server``, ``llama-bench``) built from the sources vendored in
the installed llama-cpp-python's sdist, so they run the same ggml code as the embedded engine.

One home for that build: the bench scripts (``python bench/x.py`` puts ``bench/`` on the path)
and the test suite (``tests/support/fixtures_llama.py``) import ``build``. The sdist of the
installed version is downloaded with pip, configured with CMake + Ninja with the project's
options (``-DGGML_NATIVE=OFF`` by default, as llama-cpp-python is installed: see the README's
quick start) and only the asked target is built, with two jobs (a shared machine).

The result is cached outside the repository, one folder per llama-cpp-python version and CMake
options: ``$XDG_CACHE_HOME/llmbench-tui/llama.cpp-<version>-<hash of the options>/`` (or
``~/.cache/...``). A file lock beside it makes parallel test processes wait for one build instead
of building twice. The shared libraries lie beside the binaries in ``build/bin``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

from filelock import FileLock

DEFAULT_CMAKE_ARGS = "-DGGML_NATIVE=OFF"  # how llama-cpp-python is built here (README quick start)

# What every build has: shared libraries (the binaries find them in build/bin), no network
# client, no tests or examples; the server and tools are built only when asked for as a target.
BASE_CMAKE_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
)  # fmt: skip


def installed_version() -> str:
    """The version of the installed llama-cpp-python (the sdist to build from)."""
    import llama_cpp

    return str(llama_cpp.__version__)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmbench-tui"


def build_dir(version: str, cmake_args: str = DEFAULT_CMAKE_ARGS) -> Path:
    """The cache folder for ``version`` built with ``cmake_args`` (its CMake tree: ``build/``)."""
    flags = shlex.join([*BASE_CMAKE_ARGS, *shlex.split(cmake_args)])
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return cache_root() / f"llama.cpp-{version}-{digest}"


def _sh(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def build(target: str, cmake_args: str = DEFAULT_CMAKE_ARGS, version: str | None = None) -> Path:
    """The path of ``target``'s binary (``build/bin/<target>``), built once and cached."""
    version = version or installed_version()
    home = build_dir(version, cmake_args)
    binary = home / "build" / "bin" / target
    if binary.exists():
        return binary
    home.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home) + ".lock"):
        if binary.exists():  # another process built it while this one waited
            return binary
        src = _sources(home, version)
        tree = home / "build"
        if not (tree / "build.ninja").exists():
            _sh(["cmake", "-S", str(src / "vendor" / "llama.cpp"), "-B", str(tree), "-G",
                 "Ninja", *BASE_CMAKE_ARGS, *shlex.split(cmake_args)])  # fmt: skip
        _sh(["cmake", "--build", str(tree), "--target", target, "-j2"])
    return binary


def _sources(home: Path, version: str) -> Path:
    """The extracted sdist of ``version`` (pip downloads it once)."""
    src = home / f"llama_cpp_python-{version}"
    if src.exists():
        return src
    sdist_dir = home / "sdist"
    _sh([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"llama-cpp-python=={version}", "-d", str(sdist_dir)])  # fmt: skip
    (sdist,) = sdist_dir.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(home, filter="data")
    return src
