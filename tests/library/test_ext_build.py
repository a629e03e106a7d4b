"""apalu._ext: one kernel cache per build of the source, a visible build, the no-compiler fallback.

The real build (about 40 s) is not repeated here: ``cpp_extension.load`` is replaced by a fake
that records what it was asked; tests/library/test_cpu_kernel.py exercises the built kernel.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from torch.utils import cpp_extension

from apalu import _ext


def test_build_key_follows_source_flags_and_toolchain(tmp_path, monkeypatch):
    base = _ext.build_key("AVX2")
    assert len(base) == 12 and base == _ext.build_key("AVX2")
    assert _ext.build_key("AVX512") != base  # other ISA flags
    src = tmp_path / "apalu_cpu.cpp"
    src.write_text(_ext.SOURCE.read_text() + "\n// edited\n")
    monkeypatch.setattr(_ext, "SOURCE", src)
    assert _ext.build_key("AVX2") != base  # another checkout with other source
    monkeypatch.setattr(_ext, "SOURCE", Path(_ext.__file__).parent / "csrc" / "apalu_cpu.cpp")
    keys = {}
    for ninja in ("1.11.1", "1.13.2"):  # the system's ninja and the pip one alternate on PATH
        monkeypatch.setattr(_ext, "_tool_version", lambda *cmd, v=ninja: v if cmd[0] == "ninja" else "gcc 12")
        keys[ninja] = _ext.build_key("AVX2")
    assert keys["1.11.1"] != keys["1.13.2"]


def test_build_prints_one_line_only_when_it_builds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    calls = []

    def fake_load(name, sources, extra_cflags, extra_ldflags, build_directory, verbose):
        calls.append((name, build_directory))
        (Path(build_directory) / f"{name}.so").write_bytes(b"")
        return "module"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    assert _ext._build() == "module"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and _ext.BUILD_MESSAGE in err
    name, folder = calls[0]
    assert name.startswith("apalu_cpu_") and name.endswith(_ext.build_key(name.split("_")[2].upper()))
    assert Path(folder) == tmp_path / "apalu" / name
    assert _ext._build() == "module" and capsys.readouterr().err == ""  # cached: silent


def test_no_compiler_falls_back_and_warns_once(monkeypatch):
    monkeypatch.setattr(_ext, "_STATE", {"tried": False, "module": None, "error": None})
    monkeypatch.setenv(_ext.ENV_SWITCH, "1")

    def no_compiler():
        raise RuntimeError("error: c++: command not found")

    monkeypatch.setattr(_ext, "_build", no_compiler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _ext.kernel() is None and _ext.kernel() is None
    assert len([w for w in caught if "could not be built" in str(w.message)]) == 1
    assert "unavailable" in _ext.status()
    assert _ext.main(["--build"]) == 0  # make kernel does not fail the build of the book


@pytest.mark.parametrize("argv", [["--help"]])
def test_entry_point_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        _ext.main(argv)
    assert info.value.code == 0 and "--build" in capsys.readouterr().out
