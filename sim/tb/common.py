"""Pieces shared by the cocotb benches (stream ports i/o, clock clk, synchronous reset rst)."""

from __future__ import annotations

from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from quant.fixed_point import unpack_codes


async def reset_stream_dut(dut, cycles: int = 3) -> None:
    """Hold rst for `cycles` clocks with the source idle and the sink not ready, then release it."""
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def drive_stream(dut, beats, rng, idle: float = 0.0, stop=lambda: False, port: str = "i") -> None:
    """Source on `port` (default `i`): each beat held with valid until a rising edge sees ready; random idle cycles
    before beats with probability `idle`. Returns early when `stop()` turns true."""
    for word in beats:
        while idle and rng.random() < idle:
            getattr(dut, f"{port}__valid").value = 0
            await RisingEdge(dut.clk)
            if stop():
                return
        getattr(dut, f"{port}__valid").value = 1
        getattr(dut, f"{port}__payload").value = int(word)
        while True:
            await ReadOnly()
            fired = bool(getattr(dut, f"{port}__ready").value)
            await RisingEdge(dut.clk)
            if fired or stop():
                break
        if stop():
            return
    getattr(dut, f"{port}__valid").value = 0


async def collect_stream(dut, count: int, out: list, rng, backpressure: float = 0.0, watchdog: int = 200000,
                         stop=lambda: False, what: str = "beats", port: str = "o") -> None:
    """Sink on `port` (default `o`): append `count` payloads to `out`, dropping ready with probability
    `backpressure`; fails when nothing arrives for `watchdog` cycles."""
    quiet = 0
    while len(out) < count and not stop():
        quiet += 1
        if quiet > watchdog:
            raise AssertionError(f"watchdog: no output for {watchdog} cycles after {len(out)} of {count} {what}")
        ready = not (backpressure and rng.random() < backpressure)
        getattr(dut, f"{port}__ready").value = int(ready)
        await ReadOnly()
        if ready and getattr(dut, f"{port}__valid").value:
            out.append(int(getattr(dut, f"{port}__payload").value))
            quiet = 0
        await RisingEdge(dut.clk)
    getattr(dut, f"{port}__ready").value = 0


def compare_pixels(words: list[int], expected, channels: int, bits: int, max_report: int = 10) -> tuple:
    """Code-by-code comparison of output pixel words with `expected` (T, P) words, in stream order.

    Returns (codes compared, mismatching codes, the first `max_report` mismatches as dicts)."""
    pixels = expected.shape[1]
    compared, mismatches, report = 0, 0, []
    for idx, word in enumerate(words):
        t, pix = divmod(idx, pixels)
        got, exp = unpack_codes(word, channels, bits), unpack_codes(int(expected[t][pix]), channels, bits)
        for ch, (g, e) in enumerate(zip(got, exp)):
            compared += 1
            if g != e:
                mismatches += 1
                if len(report) < max_report:
                    report.append({"step": t, "pixel": pix, "channel": ch, "rtl": g, "expected": e})
    return compared, mismatches, report


def pauses(rng, p: float):
    """A cocotbext-axi pause generator: pause with probability p each cycle."""
    while True:
        yield rng.random() < p


def _ram_channels(ram) -> tuple:
    return (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel, ram.read_if.ar_channel,
            ram.read_if.r_channel)


def pause_ram(ram, rng, p: float) -> None:
    """Random pauses (probability p, seeds from rng) on all five channels of a cocotbext-axi AxiRam; p = 0: none."""
    import random
    for ch in _ram_channels(ram):
        ch.set_pause_generator(pauses(random.Random(rng.random()), p) if p else None)
        if not p:
            ch.pause = False            # the generator may have left the channel paused


async def _handshake(dut, pairs: list) -> None:
    """Hold each (valid signal, ready signal) pair's valid until a rising edge sees its ready; then drop it."""
    left = list(pairs)
    for valid, _ in left:
        valid.value = 1
    while left:
        await ReadOnly()
        fired = [(v, r) for v, r in left if r.value]
        await RisingEdge(dut.clk)
        for v, r in fired:
            v.value = 0
            left.remove((v, r))


async def axil_write(dut, addr: int, value: int, prefix: str = "s_axil_") -> int:
    """One AXI4-Lite write driven from the bench itself (no per-cycle coroutine between transactions, unlike
    cocotbext-axi's AxiLiteMaster); returns BRESP."""
    s = lambda n: getattr(dut, f"{prefix}_{n}")          # noqa: E731
    s("awaddr").value, s("awprot").value, s("wdata").value, s("wstrb").value = addr, 0, value, 0xF
    await _handshake(dut, [(s("awvalid"), s("awready")), (s("wvalid"), s("wready"))])
    s("bready").value = 1
    while True:
        await ReadOnly()
        resp = int(s("bresp").value) if s("bvalid").value else None
        await RisingEdge(dut.clk)
        if resp is not None:
            s("bready").value = 0
            return resp


async def axil_read(dut, addr: int, prefix: str = "s_axil_") -> int:
    """One AXI4-Lite read driven from the bench itself; returns RDATA."""
    s = lambda n: getattr(dut, f"{prefix}_{n}")          # noqa: E731
    s("araddr").value, s("arprot").value = addr, 0
    await _handshake(dut, [(s("arvalid"), s("arready"))])
    s("rready").value = 1
    while True:
        await ReadOnly()
        data = int(s("rdata").value) if s("rvalid").value else None
        await RisingEdge(dut.clk)
        if data is not None:
            s("rready").value = 0
            return data
