"""compile_program: on-disk cache (a hit runs no compiler), atomic layout, compiler errors."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest
import torch

from braze.codegen.cpp import compile_program, compile_source
from braze.codegen.cpp import compiler as cc
from braze.errors import CompilationError
from braze.ir.kernel import Buffer, Kernel
from cpp_testlib import alloc, const, cview, load, op, program, run


def _prog(c=0.5):
    bufs = [Buffer("x", ("T", 9), "float32", "input"), Buffer("y", ("T", 9), "float32", "temp")]
    k = Kernel("affine", "pointwise", (cview("x", ("T", 9)),), cview("y", ("T", 9)), expr=op("add", load(0), const(c)))
    return program([k], bufs, symbols={"T": 4})


def test_cache_hit_skips_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAZE_CACHE_DIR", str(tmp_path))
    first = compile_program(_prog(0.25))
    assert not first.cache_hit
    assert first.library_path.parent.parent == tmp_path / "cpp"
    assert first.library_path.name == "kernel.so" and first.source_path.read_text() == first.source
    assert [p.name for p in first.library_path.parent.iterdir() if p.name.endswith(".tmp")] == []

    def no_compiler(*a, **k):
        raise AssertionError("the compiler ran on a cache hit")
    monkeypatch.setattr(subprocess, "run", no_compiler)
    monkeypatch.setattr(subprocess, "Popen", no_compiler)
    second = compile_program(_prog(0.25))
    assert second.cache_hit and second.library_path == first.library_path
    ts = alloc(second.program, {"T": 3})
    run(second, ts, {"T": 3})
    torch.testing.assert_close(ts["y"], ts["x"] + 0.25)


def test_different_program_different_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAZE_CACHE_DIR", str(tmp_path))
    a, b = compile_program(_prog(1.0)), compile_program(_prog(2.0))
    assert a.library_path != b.library_path
    with pytest.raises(ValueError, match="symbol"):
        a.run([0, 0], [])


def test_compiler_error_names_source(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAZE_CACHE_DIR", str(tmp_path))
    with pytest.raises(CompilationError) as e:
        compile_source("this is not C++;\n", "broken")
    msg = str(e.value)
    assert "kernel.cpp" in msg and "error" in msg
    assert not list(tmp_path.rglob("*.so"))


def test_failing_cxx(monkeypatch, tmp_path):
    script = tmp_path / "fakecxx"
    script.write_text("#!/bin/sh\necho 'fakecxx: internal compiler error: boom' >&2\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BRAZE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(script))
    with pytest.raises(CompilationError, match="boom") as e:
        compile_program(_prog(3.0))
    assert "exited 3" in str(e.value) and os.path.basename(str(e.value).split("source: ")[1].split()[0]) == "kernel.cpp"


def test_missing_cxx(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAZE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "definitely-not-a-compiler-xyz")
    with pytest.raises(CompilationError, match="not found"):
        compile_program(_prog(4.0))
