"""The mapped decoder engine at gate level (hw.asic.gatesim.GateSim) running a layer program, with its switching
activity counted per descriptor.

    run_program(sim, image, program_addr, word_bytes) -> EngineGateRun

The bench around the netlist is the firmware's and the memory's: a reset, PROGRAM_ADDR and CTRL.START written over
AXI4-Lite, an AXI4 memory slave that answers every channel without pausing (a read burst's first beat the cycle
after its address; writes taken as they come, one response per burst), then STATUS and CYCLES read back once `irq`
rises. The memory ends as the engine left it (`EngineGateRun.memory`), for the caller to compare with the integer
model's maps.

Activity is split by descriptor and phase: a read burst of the program region (one 16-word burst a descriptor,
hw.engine.engine) starts the next descriptor's "load" segment (the fetch, its weight and bias beats: the regions
`load_regions` names for it), and the first beat of any other read burst starts its "run" segment (input rows, maps,
sums; beats come back in order, so every weight beat is in before it). Each segment holds the toggles of every net, the macro accesses and its cycles (the first segment, descriptor
-1, holds the START write). The clock is not a
net of the simulation: two edges a cycle are added for its bits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from base.errors import EdgecodecError

from hw.asic.gatesim import GateSim
from hw.asic.power import Activity
from hw.engine.program import FLAG_ADD, FLAG_GRU, FLAG_LAST, FLAG_WARP

CTRL, STATUS, PROGRAM_ADDR, CYCLES = 0x08, 0x0C, 0x10, 0x14
DONE, ERROR, RANGE = 2, 4, 16
RESET_CYCLES = 3


@dataclass
class Segment:
    descriptor: int                 # index in the program (-1: before the first fetch)
    phase: str = "load"             # "load": fetch, weights, biases; "run": the rest
    cycles: int = 0
    toggles: np.ndarray | None = None
    accesses: dict = field(default_factory=dict)


@dataclass
class EngineGateRun:
    memory: bytes
    status: int
    cycles_register: int            # the engine's CYCLES register after the run
    sim_cycles: int                 # cycles simulated from START to irq
    segments: list


def segment_activity(sim: GateSim, segments: list[Segment], clock_bits: list) -> Activity:
    """The summed activity of `segments` (power.compute's input)."""
    tg = np.sum([s.toggles for s in segments], axis=0)
    cycles = sum(s.cycles for s in segments)
    inv = {i: b for b, i in sim.index.items()}
    toggles = {inv[int(i)]: int(tg[i]) for i in np.nonzero(tg)[0] if int(i) in inv}
    for b in clock_bits:
        toggles[inv[b]] = 2 * cycles
    counts: dict = {}
    for s in segments:
        for k, v in s.accesses.items():
            counts[k] = counts.get(k, 0) + v
    return Activity(toggles, cycles, counts, len(inv))


def signature(fields: list) -> tuple:
    """What makes two descriptors the same layer whatever their map size or memory plan."""
    flags = (fields[0] & 0xFFFFFFFF) & ~FLAG_LAST
    if flags & FLAG_GRU:
        return ("gru", fields[1] & 0xFF)
    if flags & (FLAG_ADD | FLAG_WARP):
        return ("add" if flags & FLAG_ADD else "warp", flags)
    return ("conv", flags, fields[1] & 0xFF, fields[2] & 0xFFFFFFFF, fields[5], fields[6], fields[7], fields[9])


def load_regions(fields: list, word_bytes: int) -> list[tuple[int, int]]:
    """The weight and bias regions of a convolution descriptor (hw.engine.program.stack_descriptors' fields 8-10)."""
    if (fields[0] & 0xFFFFFFFF) & (FLAG_ADD | FLAG_GRU | FLAG_WARP):
        return []
    cog = fields[2] & 0xFFFFFFFF
    return [(fields[8], fields[8] + fields[9] * word_bytes), (fields[10], fields[10] + cog * word_bytes)]


class _Memory:
    """AXI4 slave without pauses over a bytearray (INCR bursts of full-width beats)."""

    def __init__(self, image: bytes, word_bytes: int):
        self.data = bytearray(image)
        self.wb = word_bytes
        self.reads: deque = deque()         # (address, beats left, first beat)
        self.writes: deque = deque()        # addresses of accepted write bursts
        self.w_addr = None
        self.b_pending = 0

    def _check(self, addr: int, beats: int, what: str) -> None:
        if addr % self.wb or addr + beats * self.wb > len(self.data):
            raise EdgecodecError(f"gate-level engine: {what} burst at {addr:#x} of {beats} beats outside the "
                                 f"{len(self.data)}-byte memory or not word-aligned")

    def drive(self, sim: GateSim) -> None:
        sim.set_port("m_axi__arready", 1)
        sim.set_port("m_axi__awready", 1)
        sim.set_port("m_axi__wready", 1 if self.writes or self.w_addr is not None else 0)
        if self.reads:
            addr, left, _ = self.reads[0]
            sim.set_port("m_axi__rvalid", 1)
            sim.set_port("m_axi__rdata", int.from_bytes(self.data[addr:addr + self.wb], "little"))
            sim.set_port("m_axi__rlast", 1 if left == 1 else 0)
        else:
            sim.set_port("m_axi__rvalid", 0)
            sim.set_port("m_axi__rlast", 0)
        sim.set_port("m_axi__bvalid", 1 if self.b_pending else 0)

    def respond(self, sim: GateSim) -> tuple[int | None, int | None]:
        """After the nets settle: the handshakes of this cycle. Returns (the address of a read burst accepted, of a
        read burst whose first beat went out), each None if none."""
        new_read = first_beat = None
        if self.reads and sim.port("m_axi__rready"):
            addr, left, first = self.reads.popleft()
            if first:
                first_beat = addr
            if left > 1:
                self.reads.appendleft((addr + self.wb, left - 1, False))
        if self.b_pending and sim.port("m_axi__bready"):
            self.b_pending -= 1
        if (self.writes or self.w_addr is not None) and sim.port("m_axi__wvalid"):
            if self.w_addr is None:
                self.w_addr = self.writes.popleft()
            a = self.w_addr
            strb = sim.port("m_axi__wstrb")
            word = sim.port("m_axi__wdata").to_bytes(self.wb, "little")
            for i in range(self.wb):
                if strb >> i & 1:
                    self.data[a + i] = word[i]
            self.w_addr = None if sim.port("m_axi__wlast") else a + self.wb
            if sim.port("m_axi__wlast"):
                self.b_pending += 1
            elif self.w_addr is not None and self.w_addr + self.wb > len(self.data):
                raise EdgecodecError(f"gate-level engine: a write burst runs past the memory at {self.w_addr:#x}")
        if sim.port("m_axi__arvalid"):
            addr, beats = sim.port("m_axi__araddr"), sim.port("m_axi__arlen") + 1
            self._check(addr, beats, "read")
            self.reads.append((addr, beats, True))
            new_read = addr
        if sim.port("m_axi__awvalid"):
            addr, beats = sim.port("m_axi__awaddr"), sim.port("m_axi__awlen") + 1
            self._check(addr, beats, "write")
            self.writes.append(addr)
        return new_read, first_beat


def run_program(sim: GateSim, image: bytes, program_addr: int, descriptors: int, word_bytes: int,
                max_cycles: int, load_regions: dict | None = None) -> EngineGateRun:
    """Run the program at `program_addr` (`descriptors` of them) in a copy of `image` on the netlist (module
    docstring); raises if `irq` does not rise within `max_cycles`. `load_regions`: {descriptor: [(first byte, end),
    ...]} of its weights and biases."""
    load_regions = load_regions or {}
    mem = _Memory(image, word_bytes)
    span = descriptors * 16 * word_bytes
    segments = [Segment(-1, "load", 0, np.zeros(sim.n, dtype=np.int64))]
    state = {"prev": None}

    def cycle(lite: dict, record: bool) -> dict:
        for k, v in lite.items():
            sim.set_port(f"s_axil__{k}", v)
        mem.drive(sim)
        sim.settle()
        seg = segments[-1]
        if record:
            if state["prev"] is not None:
                seg.toggles += sim.nets != state["prev"]
            state["prev"] = sim.nets.copy()
            seg.cycles += 1
        out = {k: sim.port(f"s_axil__{k}") for k in ("awready", "wready", "bvalid", "arready", "rvalid", "rdata")}
        out["irq"] = sim.port("irq")
        addr, beat = mem.respond(sim)
        sim.clock(seg.accesses if record else None)
        if record and addr is not None and program_addr <= addr < program_addr + span:
            segments.append(Segment((addr - program_addr) // (16 * word_bytes), "load", 0,
                                    np.zeros(sim.n, dtype=np.int64)))
        elif record and beat is not None and seg.phase == "load" and seg.descriptor >= 0 and not (
                program_addr <= beat < program_addr + span
                or any(lo <= beat < hi for lo, hi in load_regions.get(seg.descriptor, ()))):
            segments.append(Segment(seg.descriptor, "run", 0, np.zeros(sim.n, dtype=np.int64)))
        return out

    idle = {"awvalid": 0, "wvalid": 0, "bready": 0, "arvalid": 0, "rready": 0, "awprot": 0, "arprot": 0,
            "wstrb": 0xF}

    def write(addr: int, value: int, record: bool) -> None:
        sig = dict(idle, awaddr=addr, wdata=value, awvalid=1, wvalid=1)
        for _ in range(64):
            out = cycle(sig, record)
            if out["awready"]:
                sig["awvalid"] = 0
            if out["wready"]:
                sig["wvalid"] = 0
            if not sig["awvalid"] and not sig["wvalid"]:
                break
        sig["bready"] = 1
        for _ in range(64):
            if cycle(sig, record)["bvalid"]:
                return
        raise EdgecodecError(f"gate-level engine: no AXI4-Lite write response for register {addr:#x}")

    def read(addr: int) -> int:
        sig = dict(idle, araddr=addr, arvalid=1)
        for _ in range(64):
            if cycle(sig, False)["arready"]:
                break
        sig.update(arvalid=0, rready=1)
        for _ in range(64):
            out = cycle(sig, False)
            if out["rvalid"]:
                cycle(idle, False)
                return out["rdata"]
        raise EdgecodecError(f"gate-level engine: no AXI4-Lite read data for register {addr:#x}")

    sim.set_port("rst", 1)
    for _ in range(RESET_CYCLES):
        cycle(idle, False)
    sim.set_port("rst", 0)
    cycle(idle, False)
    write(PROGRAM_ADDR, program_addr, False)
    write(CTRL, 1, True)
    n = 0
    while not cycle(idle, True)["irq"]:
        n += 1
        if n > max_cycles:
            raise EdgecodecError(f"gate-level engine: no irq within {max_cycles} cycles (segment "
                                 f"{segments[-1].descriptor})")
    status, cyc = read(STATUS), read(CYCLES)
    return EngineGateRun(bytes(mem.data), status, cyc, sum(s.cycles for s in segments), segments)
