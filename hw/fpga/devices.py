"""FPGA device table: capacities of the parts the open-source flow (yosys + nextpnr) can target.

Numbers are from the vendors' family data sheets (Lattice FPGA-DS-02012 ECP5/ECP5-5G, table 1.1; FPGA-DS-02008
iCE40 UltraPlus, table 1.1); ``io`` is the number of user I/O bonded out in each package.

ECP5 (LFE5U, no SERDES): ``lut`` = LUT4, ``ff`` = flip-flops (two per slice, one per LUT4), ``dsp`` = MULT18X18D
(two per sysDSP slice), ``bram`` = DP16KD (18 kbit sysMEM EBR), ``lutram`` = TRELLIS_DPR16X4 (16x4 distributed
RAM: at most one per 8-LUT PFU, nextpnr's TRELLIS_RAMW count).
iCE40 UP5K: ``lut`` = ``ff`` = logic cells (LUT4 + FF each), ``dsp`` = SB_MAC16, ``bram`` = SB_RAM40_4K (4 kbit
EBR), ``spram`` = SB_SPRAM256KA (256 kbit single-port RAM), no distributed RAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from base.errors import EdgecodecError

FAMILIES = ("ecp5", "ice40")


@dataclass(frozen=True)
class Device:
    family: str
    name: str                       # short name used on the command line: "85k", "up5k"
    part: str                       # vendor part prefix
    nextpnr_flag: str               # nextpnr device option
    capacity: dict                  # resource -> count (lut, ff, dsp, bram, lutram[, spram])
    packages: dict                  # package -> user I/O count
    default_package: str
    speeds: tuple = ()              # speed grades; () = the family has none to choose in nextpnr
    default_speed: int | None = None
    notes: dict = field(default_factory=dict)

    def package_io(self, package: str) -> int:
        return self.packages[package]


_ECP5_PACKAGES = {
    "25k": {"CSFBGA285": 118, "CABGA256": 197, "CABGA381": 197},
    "45k": {"CSFBGA285": 118, "CABGA256": 197, "CABGA381": 203, "CABGA554": 245},
    "85k": {"CSFBGA285": 118, "CABGA256": 197, "CABGA381": 205, "CABGA554": 259, "CABGA756": 365},
}


def _ecp5(name: str, luts: int, ebr: int, mult18: int) -> Device:
    return Device(family="ecp5", name=name, part=f"LFE5U-{name[:-1].upper()}F", nextpnr_flag=f"--{name}",
                  capacity={"lut": luts, "ff": luts, "dsp": mult18, "bram": ebr, "lutram": luts // 8},
                  packages=_ECP5_PACKAGES[name], default_package="CABGA381", speeds=(6, 7, 8), default_speed=6)


DEVICES: dict[str, dict[str, Device]] = {
    "ecp5": {
        "25k": _ecp5("25k", 24288, 56, 28),
        "45k": _ecp5("45k", 43848, 108, 72),
        "85k": _ecp5("85k", 83640, 208, 156),
    },
    "ice40": {
        "up5k": Device(family="ice40", name="up5k", part="iCE40UP5K", nextpnr_flag="--up5k",
                       capacity={"lut": 5280, "ff": 5280, "dsp": 8, "bram": 30, "lutram": 0, "spram": 4},
                       packages={"sg48": 39, "uwg30": 21}, default_package="sg48"),
    },
}


def _choices(items) -> str:
    return ", ".join(str(x) for x in items)


def get_device(family: str, device: str) -> Device:
    """The table entry; an unknown family or device is an EdgecodecError listing the valid ones."""
    fam = str(family).lower()
    if fam not in DEVICES:
        raise EdgecodecError(f"unknown FPGA family '{family}'; choose one of {_choices(FAMILIES)}")
    dev = str(device).lower()
    if dev not in DEVICES[fam]:
        raise EdgecodecError(f"unknown {fam} device '{device}'; choose one of {_choices(DEVICES[fam])}")
    return DEVICES[fam][dev]


def resolve(family: str, device: str, package: str | None = None, speed=None) -> tuple[Device, str, int | None]:
    """(device, package, speed) with defaults filled in; bad names are FlowErrors that list the choices."""
    dev = get_device(family, device)
    if package is None:
        pkg = dev.default_package
    else:
        match = [p for p in dev.packages if p.lower() == str(package).lower()]
        if not match:
            raise EdgecodecError(f"unknown package '{package}' for {dev.family} {dev.name}; "
                            f"choose one of {_choices(dev.packages)}")
        pkg = match[0]
    if speed is None:
        spd = dev.default_speed
    elif not dev.speeds:
        raise EdgecodecError(f"{dev.family} {dev.name} has no speed grades to choose (got speed={speed!r}); "
                        f"leave speed unset")
    else:
        try:
            spd = int(speed)
        except (TypeError, ValueError):
            spd = None
        if spd not in dev.speeds:
            raise EdgecodecError(f"unknown speed grade '{speed}' for {dev.family} {dev.name}; "
                            f"choose one of {_choices(dev.speeds)}")
    return dev, pkg, spd


def check_fit(used: dict, dev: Device, package: str, io_pins: int) -> dict:
    """Utilisation {resource: used / available}; a design that does not fit is an EdgecodecError listing every resource.

    ECP5 distributed RAM occupies logic slices: each TRELLIS_DPR16X4 takes the four LUT4 of two slices, so
    LUT4 + 4 * DPR16X4 must fit in the LUT4 count as well.
    """
    cap = dict(dev.capacity, io=dev.packages[package])
    use = {k: int(used.get(k, 0)) for k in cap if k != "io"}
    use["io"] = int(io_pins)
    if dev.family == "ecp5":
        cap["lut+lutram"] = cap["lut"]
        use["lut+lutram"] = use["lut"] + 4 * use["lutram"]
    util = {k: (use[k] / cap[k] if cap[k] else (0.0 if use[k] == 0 else float("inf"))) for k in cap}
    over = [k for k in cap if use[k] > cap[k]]
    if over:
        table = "; ".join(f"{k} {use[k]}/{cap[k]} ({100 * util[k]:.0f}%)" + (" OVER" if k in over else "")
                          for k in cap)
        raise EdgecodecError(f"design does not fit {dev.part} ({dev.family} {dev.name}, {package}): "
                        f"{', '.join(over)} over capacity -- used/available: {table}")
    return {k: round(v, 4) for k, v in util.items()}


ECP5_DEVICES = tuple(DEVICES["ecp5"])        # ("25k", "45k", "85k"), smallest first
ICE40_DEVICES = tuple(DEVICES["ice40"])
