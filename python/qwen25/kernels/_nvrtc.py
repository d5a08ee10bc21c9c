"""Compile the CUDA sources with NVRTC through ctypes, without a GPU or CuPy.

This is a development and CI check. NVRTC is a library (the ``nvidia-cuda-nvrtc`` wheel that a
CUDA build of torch pulls in), so it runs on machines that have no GPU:

* :func:`check_family` compiles one family to PTX and checks that every entry point is defined;
* :func:`sass_resources` compiles it to a cubin (SASS, i.e. ``ptxas`` runs) for a real target
  such as ``sm_80`` or ``sm_90``, with ``ptxas -v``, and returns each entry point's registers,
  static shared memory, stack frame and spills, read from the ptxas report and checked against the
  cubin itself (its ELF ``.nv.info`` attributes: register count and ``__launch_bounds__``);
* :func:`resource_problems` lists what would break or slow a launch: spills, a stack frame, more
  registers than a block of the launch bound can hold, too much static shared memory, a launch
  bound that differs from the launchers' ``_loader.max_threads``.

``python -m qwen25.kernels._nvrtc`` prints the register and shared-memory table for sm_80 and
sm_90 and exits 1 when any problem is found. Nothing here runs a kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

_CANDIDATE_DIRS = ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib", "nvidia/cu12/lib")
_CANDIDATE_NAMES = ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")

#: The real targets compiled to SASS: Ampere (A100) and Hopper (H100/H200).
SASS_ARCHS: tuple[str, ...] = ("sm_80", "sm_90")
#: Registers of one SM's register file, and the most one block may use (sm_80 and sm_90 alike).
REGISTERS_PER_BLOCK = 65536
#: Registers are given to a warp in units of 256 (8 per thread).
_REGISTER_UNIT_PER_WARP = 256
#: Static shared memory one block may declare without opting in to more (48 KiB).
STATIC_SMEM_LIMIT = 48 * 1024


def find_nvrtc() -> str | None:
    """Path (or loadable name) of libnvrtc, or None when it cannot be found."""
    roots = [Path(p) for p in sys.path if p]
    for root in roots:
        for sub in _CANDIDATE_DIRS:
            for name in _CANDIDATE_NAMES:
                cand = root / sub / name
                if cand.is_file():
                    return str(cand)
    for env in ("CUDA_HOME", "CUDA_PATH"):
        home = os.environ.get(env)
        if home:
            for name in _CANDIDATE_NAMES:
                cand = Path(home) / "lib64" / name
                if cand.is_file():
                    return str(cand)
    return ctypes.util.find_library("nvrtc")


def load_nvrtc(lib: str | None = None) -> ctypes.CDLL:
    """Load libnvrtc; OSError (saying what was tried) when it is missing or does not load."""
    path = lib or find_nvrtc()
    if path is None:
        raise OSError("libnvrtc not found on sys.path (nvidia/cu13/lib, nvidia/cuda_nvrtc/lib, nvidia/cu12/lib), "
                      "CUDA_HOME/lib64 or the linker path: install the nvidia-cuda-nvrtc wheel "
                      "(requirements-dev.txt) or a CUDA build of torch")
    return ctypes.CDLL(path)


def nvrtc_version(lib: str | None = None) -> tuple[int, int]:
    nv = load_nvrtc(lib)
    major, minor = ctypes.c_int(), ctypes.c_int()
    nv.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


class NvrtcResult:
    def __init__(self, ok: bool, log: str, ptx: str, cubin: bytes = b"") -> None:
        self.ok = ok
        self.log = log
        self.ptx = ptx
        self.cubin = cubin


def compile_source(
    source: str,
    name: str,
    arch: str = "compute_90",
    lib: str | None = None,
    options: tuple[str, ...] | None = None,
    ptxas_verbose: bool = False,
) -> NvrtcResult:
    """Compile ``source``; returns success, the log and the PTX (``arch`` = ``compute_XX``) or
    the cubin (``arch`` = ``sm_XX``, SASS: ptxas runs inside NVRTC). ``options`` default to the
    loader's (:func:`qwen25.kernels._loader.compile_options`); ``ptxas_verbose`` adds
    ``--ptxas-options=-v``, whose resource report lands in the log."""
    from ._loader import compile_options

    nv = load_nvrtc(lib)
    prog = ctypes.c_void_p()
    rc = nv.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed with code {rc}")
    try:
        opts = [f"--gpu-architecture={arch}", *(compile_options() if options is None else options)]
        if ptxas_verbose:
            opts.append("--ptxas-options=-v")
        raw = [o.encode() for o in opts]
        arr = (ctypes.c_char_p * len(raw))(*raw)
        rc = nv.nvrtcCompileProgram(prog, len(raw), arr)
        size = ctypes.c_size_t()
        nv.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        nv.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        ptx, cubin = "", b""
        if rc == 0 and arch.startswith("sm_"):
            nv.nvrtcGetCUBINSize(prog, ctypes.byref(size))
            cbuf = ctypes.create_string_buffer(size.value)
            nv.nvrtcGetCUBIN(prog, cbuf)
            cubin = cbuf.raw[: size.value]
        elif rc == 0:
            nv.nvrtcGetPTXSize(prog, ctypes.byref(size))
            pbuf = ctypes.create_string_buffer(size.value)
            nv.nvrtcGetPTX(prog, pbuf)
            ptx = pbuf.value.decode(errors="replace")
        return NvrtcResult(rc == 0, log, ptx, cubin)
    finally:
        nv.nvrtcDestroyProgram(ctypes.byref(prog))


def check_family(family: str, arch: str = "compute_90") -> NvrtcResult:
    """Compile one kernel family to PTX as the loader assembles it; raise KernelCompileError on
    failure or when an entry point is missing."""
    from ._loader import assemble_source, compile_error, entry_points

    res = compile_source(assemble_source(family), f"{family}.cu", arch)
    if not res.ok:
        raise compile_error(family, res.log)
    missing = [n for n in entry_points(family) if f".entry {n}(" not in res.ptx]
    if missing:
        raise compile_error(family, f"entry points missing from the PTX: {missing}")
    return res


# ---- the ptxas report ------------------------------------------------------------------------

_RE_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+a?)'")
_RE_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_RE_USED = re.compile(r"Used (\d+) registers")
_RE_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_report(log: str) -> dict[str, dict[str, int]]:
    """``ptxas -v`` output -> ``{entry: {registers, smem, stack, spill_stores, spill_loads}}``.

    Raises ValueError naming the line when an entry's report is incomplete."""
    out: dict[str, dict[str, int]] = {}
    current: str | None = None
    for lineno, line in enumerate(log.splitlines(), 1):
        m = _RE_ENTRY.search(line)
        if m:
            current = m.group(1)
            out[current] = {}
            continue
        if current is None:
            continue
        m = _RE_FRAME.search(line)
        if m:
            out[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
            continue
        m = _RE_USED.search(line)
        if m:
            smem = _RE_SMEM.search(line)
            out[current].update(registers=int(m.group(1)), smem=int(smem.group(1)) if smem else 0)
    keys = {"registers", "smem", "stack", "spill_stores", "spill_loads"}
    for entry, rep in out.items():
        if set(rep) != keys:
            raise ValueError(f"ptxas report for {entry} lacks {sorted(keys - set(rep))}:\n{log}")
    return out


# ---- the cubin (ELF) -------------------------------------------------------------------------

_EIATTR_MAX_THREADS = 0x05  # value: 3 x u32, the __launch_bounds__ block size (x, y, z)
_EIATTR_REGCOUNT = 0x2F  # value: u32 symbol index, u32 registers
# EIFMT_NVAL, EIFMT_BVAL, EIFMT_HVAL: a 2-byte head and 2 bytes of value (padding for NVAL/BVAL)
_NVI_FORMATS = {1: 2, 2: 2, 3: 2}


def read_cubin(cubin: bytes) -> dict[str, dict[str, int]]:
    """Per entry point, what the cubin itself says: ``registers`` (EIATTR_REGCOUNT in
    ``.nv.info``) and ``max_threads`` (EIATTR_MAX_THREADS in ``.nv.info.<entry>``, present when the
    kernel has ``__launch_bounds__``; 0 otherwise). A plain ELF64 reader, no CUDA tools."""
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2 or cubin[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF cubin")
    shoff = struct.unpack_from("<Q", cubin, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    sections = []
    for i in range(shnum):
        name, typ, _flags, _addr, off, size, link, info, _align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", cubin, shoff + i * shentsize)
        sections.append((name, typ, off, size, link, info, entsize))

    def cstr(table_off: int, at: int) -> str:
        end = cubin.index(b"\0", table_off + at)
        return cubin[table_off + at : end].decode()

    names = [cstr(sections[shstrndx][2], s[0]) for s in sections]
    symtab = next(i for i, s in enumerate(sections) if s[1] == 2)  # SHT_SYMTAB
    _, _, sym_off, sym_size, sym_link, _, sym_ent = sections[symtab]
    strtab_off = sections[sym_link][2]
    symbols = [cstr(strtab_off, struct.unpack_from("<I", cubin, sym_off + j * sym_ent)[0])
               for j in range(sym_size // sym_ent)]

    def attributes(sec: int) -> list[tuple[int, bytes]]:
        _, _, off, size, _, _, _ = sections[sec]
        data, i, out = cubin[off : off + size], 0, []
        while i + 2 <= len(data):
            fmt, attr = data[i], data[i + 1]
            if fmt == 4:  # EIFMT_SVAL: u16 size, then the value
                n = struct.unpack_from("<H", data, i + 2)[0]
                out.append((attr, data[i + 4 : i + 4 + n]))
                i += 4 + n
            elif fmt in _NVI_FORMATS:
                n = _NVI_FORMATS[fmt]
                out.append((attr, data[i + 2 : i + 2 + n]))
                i += 2 + n
            else:
                raise ValueError(f"unknown .nv.info attribute format {fmt} in section {names[sec]}")
        return out

    result: dict[str, dict[str, int]] = {}
    for sec, name in enumerate(names):
        if name.startswith(".text."):
            result[name[len(".text."):]] = {"registers": -1, "max_threads": 0}
    for sec, name in enumerate(names):
        if name == ".nv.info":
            for attr, val in attributes(sec):
                if attr == _EIATTR_REGCOUNT:
                    sym, regs = struct.unpack_from("<II", val)
                    if symbols[sym] in result:
                        result[symbols[sym]]["registers"] = regs
        elif name.startswith(".nv.info.") and name[len(".nv.info."):] in result:
            for attr, val in attributes(sec):
                if attr == _EIATTR_MAX_THREADS:
                    x, y, z = struct.unpack_from("<III", val)
                    result[name[len(".nv.info."):]]["max_threads"] = x * y * z
    return result


# ---- resources per entry point ---------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """One entry point compiled for one target."""

    entry: str
    arch: str
    registers: int  # per thread, ptxas
    smem: int  # static shared memory per block, bytes
    stack: int  # stack frame per thread, bytes (local memory)
    spill_stores: int
    spill_loads: int
    cubin_registers: int  # the same, read back from the cubin
    launch_bound: int  # __launch_bounds__ in the cubin (0: none)
    max_threads: int  # the most threads per block the launchers use (_loader.max_threads)

    @property
    def registers_per_block(self) -> int:
        """Registers a block of ``max_threads`` threads takes from the register file."""
        per_warp = -(-self.registers * 32 // _REGISTER_UNIT_PER_WARP) * _REGISTER_UNIT_PER_WARP
        return -(-self.max_threads // 32) * per_warp


def sass_resources(family: str, arch: str, lib: str | None = None) -> list[Resources]:
    """Compile one family to SASS for ``arch`` (``sm_80``, ``sm_90``) with the ptxas report and
    return one :class:`Resources` per entry point (sorted by name). Raises KernelCompileError when
    compilation fails or an entry point is missing."""
    from ._loader import assemble_source, compile_error, entry_points, max_threads

    res = compile_source(assemble_source(family), f"{family}.cu", arch, lib=lib, ptxas_verbose=True)
    if not res.ok:
        raise compile_error(family, res.log)
    report = parse_ptxas_report(res.log)
    cubin = read_cubin(res.cubin)
    missing = [n for n in entry_points(family) if n not in report or n not in cubin]
    if missing:
        raise compile_error(family, f"entry points missing from the {arch} cubin: {missing}")
    bound = max_threads(family)
    return [
        Resources(entry=n, arch=arch, cubin_registers=cubin[n]["registers"], launch_bound=cubin[n]["max_threads"],
                  max_threads=bound, **report[n])
        for n in sorted(entry_points(family))
    ]


def resource_problems(r: Resources) -> list[str]:
    """Everything about one entry point's SASS that would fail a launch or slow it down."""
    where = f"{r.entry} ({r.arch})"
    problems = []
    if r.spill_stores or r.spill_loads:
        problems.append(f"{where}: spills {r.spill_stores} bytes stores / {r.spill_loads} bytes loads")
    if r.stack:
        problems.append(f"{where}: {r.stack} bytes stack frame (local memory)")
    if r.registers != r.cubin_registers:
        problems.append(f"{where}: ptxas reports {r.registers} registers, the cubin {r.cubin_registers}")
    if r.launch_bound != r.max_threads:
        problems.append(f"{where}: __launch_bounds__ is {r.launch_bound or 'absent'}, "
                        f"the launchers use up to {r.max_threads} threads")
    if r.registers > 255 or r.registers_per_block > REGISTERS_PER_BLOCK:
        problems.append(f"{where}: {r.registers} registers x {r.max_threads} threads = {r.registers_per_block} "
                        f"> {REGISTERS_PER_BLOCK} registers per block")
    if r.smem > STATIC_SMEM_LIMIT:
        problems.append(f"{where}: {r.smem} bytes static shared memory > {STATIC_SMEM_LIMIT}")
    return problems


def all_resources(archs: tuple[str, ...] = SASS_ARCHS, lib: str | None = None) -> list[Resources]:
    from ._loader import FAMILIES

    return [r for arch in archs for fam in FAMILIES for r in sass_resources(fam, arch, lib)]


def resource_table(resources: list[Resources]) -> str:
    """A markdown table: one row per entry point, the registers / shared memory per target."""
    archs = sorted({r.arch for r in resources})
    by = {(r.entry, r.arch): r for r in resources}
    entries = list(dict.fromkeys(r.entry for r in resources))
    head = "| entry point | threads (max) | " + " | ".join(
        f"{a} registers | {a} regs/block | {a} smem B | {a} stack/spill B" for a in archs) + " |"
    lines = [head, "|---|---:|" + "---:|---:|---:|---:|" * len(archs)]
    for e in entries:
        cells = []
        for a in archs:
            r = by[(e, a)]
            cells += [str(r.registers), f"{r.registers_per_block:,}", str(r.smem),
                      f"{r.stack}/{r.spill_stores + r.spill_loads}"]
        lines.append(f"| `{e}` | {by[(e, archs[0])].max_threads} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    major, minor = nvrtc_version()
    resources = all_resources()
    print(f"NVRTC {major}.{minor}: SASS for {', '.join(SASS_ARCHS)}, every entry point (ptxas -v; registers "
          f"per block = registers x the launchers' max threads, of {REGISTERS_PER_BLOCK:,})\n")
    print(resource_table(resources))
    problems = [p for r in resources for p in resource_problems(r)]
    for p in problems:
        print("PROBLEM:", p)
    print(f"\n{len(resources)} entry-point builds, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
