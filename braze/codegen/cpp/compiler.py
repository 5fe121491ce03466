"""Compile emitted C++ to a shared object, cache it on disk, load it with ctypes.

Cache key: sha256 of (source, compiler flags, compiler identity, CPU identity). The compiler
identity is its resolved path + size + mtime (so a cache hit runs no process at all; an upgraded
compiler changes the key); the CPU identity matters because of -march=native. Layout:
    $BRAZE_CACHE_DIR (default ~/.cache/braze) / cpp / <hash> / kernel.cpp, kernel.so
Both files are written to a temporary name and renamed into place, so a concurrent process sees
either no .so or a complete one.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from braze.errors import CompilationError
from braze.ir.kernel import Program
from braze.codegen.cpp.emit import emit_program

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=fast",
         "-fno-math-errno", "-fno-trapping-math")


def cache_root() -> Path:
    env = os.environ.get("BRAZE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "braze"


def compiler_command() -> list[str]:
    return shlex.split(os.environ.get("CXX") or "g++")


def _compiler_identity(cmd: list[str]) -> str:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise CompilationError(f"C++ compiler {cmd[0]!r} not found; install g++ or set CXX")
    real = os.path.realpath(exe)
    st = os.stat(real)
    return f"{' '.join(cmd)}|{real}|{st.st_size}|{st.st_mtime_ns}"


def _cpu_identity() -> str:
    ident = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    ident += "|" + line.strip()
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return ident


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class CompiledProgram:
    """A loaded kernel library. run(buffers, symbols): buffers[i] is the data pointer (int) of
    program.buffers[i]; symbols are the runtime values of sorted(program.symbols)."""

    program: Program
    source: str
    source_path: Path
    library_path: Path
    cache_hit: bool
    _lib: ctypes.CDLL = field(repr=False, default=None)
    _fn: object = field(repr=False, default=None)

    @property
    def symbol_names(self) -> list[str]:
        return sorted(self.program.symbols)

    def run(self, buffers, symbols=()) -> None:
        nb, ns = len(self.program.buffers), len(self.program.symbols)
        if len(buffers) != nb:
            raise ValueError(f"{self.program.name}: expected {nb} buffer pointers, got {len(buffers)}")
        if len(symbols) != ns:
            raise ValueError(f"{self.program.name}: expected {ns} symbol values {self.symbol_names}, got {len(symbols)}")
        self._fn((ctypes.c_void_p * max(nb, 1))(*buffers), (ctypes.c_int64 * max(ns, 1))(*symbols))

    __call__ = run


def _compile(source_path: Path, so_path: Path, cmd: list[str]) -> None:
    fd, tmp = tempfile.mkstemp(dir=so_path.parent, prefix="kernel.", suffix=".so.tmp")
    os.close(fd)
    try:
        proc = subprocess.run([*cmd, *FLAGS, str(source_path), "-o", tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            msg = "\n".join((proc.stderr or proc.stdout).splitlines()[:25])
            raise CompilationError(f"C++ compilation failed ({' '.join(cmd)} exited {proc.returncode}); "
                                   f"source: {source_path}\n{msg}")
        os.replace(tmp, so_path)
    except OSError as e:
        raise CompilationError(f"cannot run C++ compiler {cmd[0]!r}: {e}; source: {source_path}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def compile_source(source: str, name: str = "program") -> tuple[Path, Path, bool]:
    """Cache-or-compile `source`; returns (source path, .so path, cache hit)."""
    cmd = compiler_command()
    key = "\0".join([source, " ".join(FLAGS), _compiler_identity(cmd), _cpu_identity()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    d = cache_root() / "cpp" / digest
    src, so = d / "kernel.cpp", d / "kernel.so"
    if so.exists():
        return src, so, True
    d.mkdir(parents=True, exist_ok=True)
    if not src.exists() or src.read_text() != source:
        _write_atomic(src, source.encode())
    _compile(src, so, cmd)
    return src, so, False


def compile_program(program: Program) -> CompiledProgram:
    source = emit_program(program)
    src, so, hit = compile_source(source, program.name)
    lib = ctypes.CDLL(str(so))
    fn = lib.braze_run
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)]
    fn.restype = None
    return CompiledProgram(program, source, src, so, hit, lib, fn)
