"""`edgecodec engine-plan`: the smallest PE array that reaches a frame rate on a device, or why none does."""

from __future__ import annotations

import json

import pytest

from edgecodec.cli import main


def plan(capsys, *argv) -> dict:
    assert main(["engine-plan", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")   # units built for their memory sizes
def test_the_smallest_array_that_reaches_the_rate_is_chosen(capsys):
    p = plan(capsys, "--resolution", "352x288", "--target-fps", "5", "--device", "85k", "--clock-mhz", "100")
    assert p["reachable"] and p["padded"] == "384x320" and p["clock_note"] == "given"
    rows = {r["pe"]: r for r in p["arrays"]}
    chosen = rows[p["chosen_pe"]]
    assert chosen["fits"] and chosen["fps"] >= 5
    assert all(r["fps"] < 5 or not r["fits"] for pe, r in rows.items() if pe < p["chosen_pe"])
    assert all(rows[a]["cycles_p"] > rows[b]["cycles_p"] for a, b in zip(list(rows)[:-1], list(rows)[1:]))
    assert f"PE {p['chosen_pe']}x{p['chosen_pe']} reaches" in p["verdict"]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_the_default_clock_is_the_measured_fmax(capsys):
    from edgecodec.engine_plan import measured_clock
    p = plan(capsys, "--resolution", "256x256", "--target-fps", "1")
    assert (p["clock_mhz"], p["clock_note"]) == measured_clock()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_a_device_that_cannot_reach_the_rate_says_why(capsys):
    p = plan(capsys, "--resolution", "352x288", "--target-fps", "30", "--device", "85k", "--clock-mhz", "100")
    assert not p["reachable"] and p["chosen_pe"] is None
    assert "cannot reach 30 fps" in p["verdict"] and "multipliers > 156" in p["verdict"]
    p = plan(capsys, "--resolution", "352x288", "--target-fps", "1", "--device", "25k")
    assert "LFE5U-25F" in p["verdict"]


def test_bad_input_is_refused(capsys):
    assert main(["engine-plan", "--resolution", "1920", "--target-fps", "30"]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["engine-plan", "--resolution", "352x288", "--target-fps", "0"]) == 2
    assert "must be > 0" in capsys.readouterr().err
    assert main(["engine-plan", "--resolution", "352x288", "--target-fps", "30", "--device", "99k"]) == 2


def test_the_sky130_figures_come_from_the_asic_bench(tmp_path, monkeypatch):
    """measured_asic: the summary of bench/engine_asic.py's JSON (area, Fmax, energy per frame), None without one or
    with a broken one; the flow report says it in one sentence."""
    from edgecodec import engine_plan
    from edgecodec.flow.report import asic_text
    frame = {"energy_uj": 1234.5, "fps_at_clock": 0.2, "mean_power_mw": 250.0, "cycles": 5}
    data = {"library": "sky130hd", "array": "4x4", "gru_pe": 1, "area_mm2": 12.5, "fmax_mhz": 80.1, "clock_mhz": 80.0,
            "activity": {"gate_level_mismatches": 0}, "frames": {"1920x1080": {"I": frame, "P": frame}}}
    path = tmp_path / "engine_asic.json"
    monkeypatch.setattr(engine_plan, "ASIC_JSON", str(path))
    assert engine_plan.measured_asic() is None
    path.write_text(json.dumps(data))
    a = engine_plan.measured_asic()
    assert a["area_mm2"] == 12.5 and a["frames"]["1920x1080"]["P"] == {k: frame[k] for k in
                                                                     ("energy_uj", "fps_at_clock", "mean_power_mw")}
    text = asic_text(a)
    assert "12.5 mm^2" in text and "1920x1080 P-frame 1.23 mJ" in text and "0 mismatches" in text
    path.write_text("{not json")
    assert engine_plan.measured_asic() is None
