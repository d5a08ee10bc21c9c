"""The wheels and the sdist that users install: `make wheel` and `make sdist` are run for real and
their outputs checked against references that do not come from the build:

- tags: the wheel file name and its WHEEL file, against PEP 599's manylinux2014 names;
- glibc: the highest GLIBC_* version the extension needs, read from the ELF version-needs section
  by a small reader here, which is itself checked against binutils' ``readelf``;
- contents: RECORD's hashes, the .cu sources byte for byte against python/qwen25/kernels/cuda/,
  the vocabulary blob inside the extension decoded here and compared with
  rust/qwen25-core/data/qwen25/vocab.json and merges.txt;
- install: a fresh venv gets the wheel (``--no-deps``) plus numpy/tqdm/jinja2 from the package
  index, and encodes "Hello world" to [9707, 1879] (the ids HF ``tokenizers`` gives with the real
  Qwen2.5 files); the version it reports agrees with Cargo.toml and the wheel's metadata;
- the sdist builds a wheel in a clean directory with nothing but a Rust toolchain (and maturin,
  the build backend pip would fetch), and that wheel installs and encodes too.

Build time: the test builds use their own target dir (target/wheel-test) with LTO off, 16 codegen
units and opt-level 0. The release profile's fat LTO with one codegen unit is for speed at run
time and costs minutes more on CI's 2 cores; tags, symbol versions and contents do not depend on
it (`make wheel` without these overrides is the release build).
"""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
VOCAB_DIR = ROOT / "rust" / "qwen25-core" / "data" / "qwen25"
CUDA_DIR = ROOT / "python" / "qwen25" / "kernels" / "cuda"

BUILD_ENV = {
    "CARGO_TARGET_DIR": str(ROOT / "target" / "wheel-test"),
    "CARGO_PROFILE_RELEASE_LTO": "off",
    "CARGO_PROFILE_RELEASE_CODEGEN_UNITS": "16",
    "CARGO_PROFILE_RELEASE_OPT_LEVEL": "0",
}

# PEP 599 (manylinux2014): the libraries a wheel may link without bundling them, and the glibc.
MANYLINUX2014_LIBS = {
    "libgcc_s.so.1", "libstdc++.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libc.so.6",
    "libnsl.so.1", "libutil.so.1", "libpthread.so.0", "libresolv.so.2",
    "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",  # the dynamic loader itself
}
MANYLINUX2014_GLIBC = (2, 17)
EM_MACHINE = {"x86_64": 62, "aarch64": 183}  # ELF e_machine: EM_X86_64, EM_AARCH64


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "RUSTC")}
    env.update(extra)
    return env


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {out.returncode}\n--- stdout\n{out.stdout[-6000:]}"
                    f"\n--- stderr\n{out.stderr[-6000:]}")
    return out


# -- ELF: version needs and DT_NEEDED, read here ---------------------------------------------------
def elf_needs(data: bytes) -> tuple[int, list[str], set[tuple[str, str]]]:
    """``(e_machine, DT_NEEDED names, {(library, version name)})`` of a little-endian ELF64 object,
    from its section headers: the SHT_DYNAMIC section and SHT_GNU_verneed (``.gnu.version_r``)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 file")
    (e_machine,) = struct.unpack_from("<H", data, 18)
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    # (sh_type, sh_offset, sh_size, sh_link, sh_info) per section
    secs = []
    for i in range(e_shnum):
        _name, sh_type, _flags, _addr, off, size, link, info = struct.unpack_from(
            "<IIQQQQII", data, e_shoff + i * e_shentsize)
        secs.append((sh_type, off, size, link, info))

    def cstr(strtab: int, at: int) -> str:
        base = secs[strtab][1] + at
        return data[base:data.index(b"\0", base)].decode()

    needed: list[str] = []
    versions: set[tuple[str, str]] = set()
    for sh_type, off, size, link, info in secs:
        if sh_type == 6:  # SHT_DYNAMIC: (d_tag, d_val) pairs, DT_NEEDED = 1, DT_NULL = 0 ends it
            for at in range(off, off + size, 16):
                tag, val = struct.unpack_from("<qQ", data, at)
                if tag == 0:
                    break
                if tag == 1:
                    needed.append(cstr(link, val))
        elif sh_type == 0x6FFFFFFE:  # SHT_GNU_verneed: sh_info Verneed entries, each with Vernaux
            at = off
            for _ in range(info):
                _ver, cnt, file_, aux, nxt = struct.unpack_from("<HHIII", data, at)
                lib = cstr(link, file_)
                a = at + aux
                for _ in range(cnt):
                    _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", data, a)
                    versions.add((lib, cstr(link, name)))
                    a += anext
                at += nxt
    return e_machine, needed, versions


def readelf_needs(path: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """The same two facts as binutils' ``readelf`` prints them (the reference for elf_needs)."""
    dyn = _run(["readelf", "-d", "-W", str(path)]).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    versions: set[tuple[str, str]] = set()
    in_needs, lib = False, ""
    for line in _run(["readelf", "-V", "-W", str(path)]).stdout.splitlines():
        if line.startswith("Version "):
            in_needs = line.startswith("Version needs section")
        elif in_needs and (m := re.search(r"File: (\S+)", line)):
            lib = m.group(1)
        elif in_needs and (m := re.search(r"Name: (\S+)", line)):
            versions.add((lib, m.group(1)))
    return needed, versions


def max_glibc(versions: set[tuple[str, str]]) -> tuple[int, ...]:
    """The highest GLIBC_x.y[.z] needed; a GLIBC_PRIVATE or other odd name raises."""
    found = []
    for _lib, name in versions:
        if name.startswith("GLIBC_"):
            m = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", name)
            if not m:
                raise ValueError(f"unexpected glibc symbol version {name!r}")
            found.append(tuple(int(x) for x in m.group(1).split(".")))
    return max(found) if found else (0,)


# -- the vocabulary blob inside the extension, decoded here ----------------------------------------
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: printable bytes stand for themselves, the other 68
    bytes map to U+0100 upwards in byte order."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars = {b: b for b in keep}
    n = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 0x100 + n
            n += 1
    return {chr(c): b for b, c in chars.items()}


def reference_vocab() -> tuple[list[bytes], list[tuple[int, int, int]]]:
    """Token bytes by id and merges as (left, right, merged) ids, from the shipped HF files."""
    dec = _byte_decoder()
    vocab = json.loads((VOCAB_DIR / "vocab.json").read_text(encoding="utf-8"))
    tokens: list[bytes] = [b""] * (max(vocab.values()) + 1)
    for tok, i in vocab.items():
        tokens[i] = bytes(dec[c] for c in tok)
    by_bytes = {t: i for i, t in enumerate(tokens)}
    merges = []
    for n, line in enumerate((VOCAB_DIR / "merges.txt").read_text(encoding="utf-8").splitlines()):
        if not line or (n == 0 and line.startswith("#version")):
            continue
        a, b = (bytes(dec[c] for c in part) for part in line.split(" "))
        merges.append((by_bytes[a], by_bytes[b], by_bytes[a + b]))
    return tokens, merges


def embedded_vocab(so: bytes) -> tuple[list[bytes], list[tuple[int, int, int]]]:
    """The blob build.rs embeds: b"Q25V", n_ids: u32, per id (len: u16, bytes), n_merges: u32,
    per merge (left, right, merged): 3 x u32, little endian. The magic also appears as a literal
    in the loader's code (unoptimised builds keep it apart), so every occurrence is tried and
    exactly one must parse as a whole blob."""
    found = []
    for m in re.finditer(b"Q25V", so):
        try:
            at = m.start() + 4
            (n_ids,) = struct.unpack_from("<I", so, at)
            at += 4
            tokens = []
            for _ in range(n_ids):
                (n,) = struct.unpack_from("<H", so, at)
                if at + 2 + n > len(so):
                    raise struct.error("token past the end")
                tokens.append(so[at + 2:at + 2 + n])
                at += 2 + n
            (n_merges,) = struct.unpack_from("<I", so, at)
            flat = struct.unpack_from(f"<{3 * n_merges}I", so, at + 4)
        except struct.error:
            continue
        if n_ids > 1000 and all(x < n_ids for x in flat):
            found.append((tokens, [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]))
    assert len(found) == 1, f"expected one vocabulary blob in the extension, found {len(found)}"
    return found[0]  # type: ignore[return-value]


# -- building ----------------------------------------------------------------------------------------
def cargo_version() -> str:
    return str(tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"])


def pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make wheel sdist` into a temporary DIST (the x86_64 wheel, the aarch64 one where Debian's
    rustc-web can be unpacked, the sdist)."""
    if shutil.which("make") is None:
        pytest.fail("make is not on PATH")
    if importlib.util.find_spec("ziglang") is None:
        pytest.fail("ziglang is not installed in this environment: `make wheel-deps` (`make test` does it)")
    out = tmp_path_factory.mktemp("dist")
    # -o: take the venv stamps as up to date, so that the test never pip-installs into the venv
    # it runs in (`make test` has brought them up to date before pytest starts)
    _run(["make", "--no-print-directory", "-o", ".venv/.qwen25-deps", "-o", ".venv/.qwen25-wheel-deps",
          "wheel", "sdist", f"DIST={out}"], cwd=ROOT, env=_env(**BUILD_ENV))
    return out


def _wheel(dist: Path, arch: str) -> Path:
    found = sorted(dist.glob(f"qwen25-*-cp310-abi3-*_{arch}.whl"))
    assert len(found) <= 1, found
    if not found:
        if arch == "aarch64" and not (shutil.which("apt-get") and shutil.which("dpkg")):
            pytest.skip("no aarch64 wheel: Debian's rustc-web is how it is built here, and this "
                        "machine has no apt-get/dpkg (`make wheel` printed why)")
        pytest.fail(f"`make wheel` left no {arch} wheel in {sorted(p.name for p in dist.iterdir())}")
    return found[0]


def _sdist(dist: Path) -> Path:
    found = sorted(dist.glob("qwen25-*.tar.gz"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (not the test environment's) with the wheel's three dependencies from the index."""
    where = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", str(where)], env=_env())
    py = where / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--only-binary", ":all:", "numpy", "tqdm", "jinja2"],
         env=_env())
    return where


PROBE = r"""
import importlib.metadata, importlib.util, json
import qwen25
out = {"file": qwen25.__file__, "version": qwen25.__version__,
       "dist_version": importlib.metadata.version("qwen25"),
       "ids": qwen25.Tokenizer.qwen25().encode("Hello world"),
       "vocab_size": qwen25.Tokenizer.qwen25().vocab_size,
       "torch_installed": importlib.util.find_spec("torch") is not None}
try:
    import qwen25.model
    out["model"] = "imported"
except ImportError as e:
    out["model"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def _install_and_probe(venv: Path, wheel: Path, cwd: Path) -> dict:  # type: ignore[type-arg]
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], env=_env())
    # run outside the checkout, so that nothing but the installed wheel can be imported
    res: dict = json.loads(_run([str(py), "-c", PROBE], cwd=cwd, env=_env()).stdout)  # type: ignore[type-arg]
    res["cli"] = _run([str(venv / "bin" / "qwen25"), "--version"], cwd=cwd, env=_env()).stdout.strip()
    return res


def _check_probe(res: dict, venv: Path) -> None:  # type: ignore[type-arg]
    assert Path(res["file"]).resolve().is_relative_to(venv.resolve()), res["file"]
    assert res["ids"] == [9707, 1879]
    n_added = len(json.loads((VOCAB_DIR / "tokenizer_config.json").read_text())["added_tokens_decoder"])
    n_bpe = len(json.loads((VOCAB_DIR / "vocab.json").read_text(encoding="utf-8")))
    assert res["vocab_size"] == n_bpe + n_added
    assert res["version"] == res["dist_version"] == res["cli"] == cargo_version()
    # torch is not in this venv: the model package says which extra brings it
    assert not res["torch_installed"]
    assert res["model"].startswith("MissingExtraError: qwen25.model needs torch"), res["model"]
    assert "pip install 'qwen25[torch]'" in res["model"]


# -- the tests -------------------------------------------------------------------------------------
def test_elf_reader_agrees_with_readelf() -> None:
    """The reader on the extension the test environment imports (built by `make build` against
    this machine's glibc, so it has newer symbol versions than the wheels): same answer as readelf."""
    if shutil.which("readelf") is None:
        pytest.skip("binutils' readelf is not installed")
    import qwen25._native

    so = Path(qwen25._native.__file__)
    machine, needed, versions = elf_needs(so.read_bytes())
    assert (needed, versions) == readelf_needs(so)
    assert machine == EM_MACHINE[os.uname().machine]
    assert max_glibc(versions) > (2, 0), "a glibc-linked extension needs some GLIBC_* version"


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_wheel_is_manylinux2014(dist: Path, arch: str, tmp_path: Path) -> None:
    whl = _wheel(dist, arch)
    name, version, py, abi, plat = whl.name[:-len(".whl")].split("-")
    assert (name, version, py, abi) == ("qwen25", cargo_version(), "cp310", "abi3")
    assert set(plat.split(".")) == {f"manylinux2014_{arch}", f"manylinux_2_17_{arch}"}
    with zipfile.ZipFile(whl) as z:
        meta = Parser().parsestr(z.read(f"qwen25-{version}.dist-info/WHEEL").decode())
        sos = [n for n in z.namelist() if n.endswith(".so")]
        assert sos == ["qwen25/_native.abi3.so"]
        so = z.read(sos[0])
    assert meta["Root-Is-Purelib"] == "false"
    assert sorted(meta.get_all("Tag")) == sorted(f"cp310-abi3-{p}" for p in plat.split("."))

    machine, needed, versions = elf_needs(so)
    assert machine == EM_MACHINE[arch]
    assert max_glibc(versions) <= MANYLINUX2014_GLIBC, sorted(versions)
    assert set(needed) <= MANYLINUX2014_LIBS, needed
    assert {lib for lib, _ in versions} <= set(needed)
    if shutil.which("readelf"):
        (tmp_path / "x.so").write_bytes(so)
        assert (needed, versions) == readelf_needs(tmp_path / "x.so")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_wheel_contents(dist: Path, arch: str) -> None:
    whl = _wheel(dist, arch)
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        info = f"qwen25-{cargo_version()}.dist-info"
        # RECORD lists every file with its sha256 (urlsafe base64, no padding) and size
        rows = list(csv.reader(io.StringIO(z.read(f"{info}/RECORD").decode())))
        assert {r[0] for r in rows} == names
        for path, digest, size in rows:
            if path == f"{info}/RECORD":
                continue
            data = z.read(path)
            algo, _, want = digest.partition("=")
            assert algo == "sha256" and int(size) == len(data), path
            assert base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode() == want, path
        # the CUDA sources, byte for byte
        shipped = {n.rsplit("/", 1)[1]: z.read(n) for n in names if n.startswith("qwen25/kernels/cuda/")}
        ours = {p.name: p.read_bytes() for p in CUDA_DIR.iterdir() if p.suffix in (".cu", ".cuh")}
        assert any(n.endswith(".cu") for n in ours)
        assert shipped == ours
        for must in ("qwen25/__init__.py", "qwen25/py.typed", "qwen25/_native.pyi", "qwen25/_extras.py"):
            assert must in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        eps = configparser.ConfigParser(delimiters=("=",))
        eps.read_string(z.read(f"{info}/entry_points.txt").decode())
        assert dict(eps["console_scripts"]) == {"qwen25": "qwen25.cli:main"}
        so = z.read("qwen25/_native.abi3.so")
    # the vocabulary travels inside the extension
    assert embedded_vocab(so) == reference_vocab()


def test_wheel_metadata_matches_pyproject(dist: Path) -> None:
    """Version from Cargo.toml; dependencies and extras as pyproject.toml states them."""
    whl = _wheel(dist, "x86_64")
    with zipfile.ZipFile(whl) as z:
        meta = Parser().parsestr(z.read(f"qwen25-{cargo_version()}.dist-info/METADATA").decode())
    from packaging.requirements import Requirement

    assert meta["Name"] == "qwen25" and meta["Version"] == cargo_version()
    proj = pyproject()["project"]
    assert meta["Requires-Python"] == proj["requires-python"]
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    extras = proj["optional-dependencies"]
    assert set(meta.get_all("Provides-Extra")) == set(extras)
    # a requirement as what it asks for: name, extras, versions, and on which Pythons (markers
    # may be spelled differently: python_version vs python_full_version)
    pythons = [{"python_version": v, "python_full_version": f"{v}.1"} for v in ("3.10", "3.11", "3.12", "3.14")]

    def key(r: Requirement, extra: str = "") -> tuple:  # type: ignore[type-arg]
        on = tuple(r.marker is None or r.marker.evaluate({**env, "extra": extra}) for env in pythons)
        return (r.name, tuple(sorted(r.extras)), str(r.specifier), on)

    for extra, wanted in extras.items():
        got = sorted(key(r, extra) for r in reqs if r.marker is not None and "extra" in str(r.marker)
                     and r.marker.evaluate({**pythons[0], "extra": extra}))
        assert got == sorted(key(Requirement(w), extra) for w in wanted), extra
    base = sorted(key(Requirement(r)) for r in proj["dependencies"])
    assert sorted(key(r) for r in reqs if r.marker is None or "extra" not in str(r.marker)) == base


def test_wheel_installs_in_a_fresh_venv(dist: Path, venv: Path, tmp_path: Path) -> None:
    res = _install_and_probe(venv, _wheel(dist, "x86_64"), tmp_path)
    _check_probe(res, venv)


def test_sdist_contents(dist: Path) -> None:
    with tarfile.open(_sdist(dist)) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for must in ("pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "PKG-INFO",
                 "rust/qwen25-core/build.rs", "python/qwen25/py.typed", "python/qwen25/_native.pyi"):
        assert must in names, must
    for p in [*VOCAB_DIR.iterdir(), *CUDA_DIR.iterdir()]:
        assert str(p.relative_to(ROOT)) in names, p
    if (ROOT / ".git").exists():  # every tracked source of the two crates and the package
        tracked = _run(["git", "ls-files", "rust/qwen25-core/src", "rust/qwen25-py/src", "python/qwen25"],
                       cwd=ROOT).stdout.split()
        missing = [f for f in tracked if (ROOT / f).exists() and f not in names]
        assert not missing, missing
    assert not any(n.startswith(("target/", ".venv/", "dist/")) or n.endswith(".so") for n in names)


def test_sdist_builds_a_wheel_in_a_clean_directory(dist: Path, venv: Path, tmp_path: Path) -> None:
    """pip builds the sdist as a user's pip would (PEP 517, maturin backend), from a directory that
    holds nothing but the unpacked sdist: no zig, no prebuilt extension. The result installs."""
    src = tmp_path / "src"
    src.mkdir()
    with tarfile.open(_sdist(dist)) as t:
        t.extractall(src, filter="data")
    (top,) = src.iterdir()
    # maturin dates every file in the sdist 2006 (reproducible archives); cargo would then take
    # the two crates' objects in the shared target dir as up to date. Dated now, they compile from
    # these sources (the crates.io dependencies, pinned by Cargo.lock, stay shared).
    now = time.time()
    for p in top.rglob("*"):
        os.utime(p, (now, now))
    out = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(top)],
         cwd=tmp_path, env=_env(**BUILD_ENV))
    (whl,) = out.glob("qwen25-*.whl")
    res = _install_and_probe(venv, whl, tmp_path)
    _check_probe(res, venv)
