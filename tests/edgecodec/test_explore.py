"""`edgecodec explore`: a sweep on a local Ray instance, a failing point, a resumed sweep, the Pareto front, the best
point and bad input. Points run without synthesis (cycles only) at a 4x4 map, so a point costs its worker's imports."""

from __future__ import annotations

import csv
import json

import pytest

from base.errors import EdgecodecError
from edgecodec.cli import main
from edgecodec.config import ExploreConfig, from_dict
from edgecodec.explore import Options, best_point, pareto_front, sweep


def _point(pe, c=4, device="ecp5-85k"):
    return {"channels": c, "act_bits": 8, "weight_bits": 8, "pe": pe, "simd": 2, "dw_parallel": 2,
            "device": device, "library": None}


def _opts(tmp_path):
    return Options(height=4, width=4, se_reduction=2, dw_kernel=3, synth=False, out=str(tmp_path / "explore"))


def test_ray_sweep_failing_point_and_resume(tmp_path):
    ray = pytest.importorskip("ray")
    points = [_point(2), _point(3)]     # PE=3 does not divide C=4: recorded, the other point completes
    opts = _opts(tmp_path)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             _system_config={"worker_niceness": 0})   # Ray starts workers at nice 15: starved beside xdist
    try:
        res = sweep(points, opts, ray="auto", log=lambda m: None)
    finally:
        ray.shutdown()
    ok, bad = res["rows"]
    assert res["evaluated"] == 2 and res["cached"] == 0 and res["failed"] == 1
    assert ok["status"] == "ok" and ok["cycles_per_step"] == 4 + 2 * 4 * 2 + 13 + 16 * 2 * 2 + 12
    assert ok["fps"] == pytest.approx(50e6 / ok["cycles_per_step"])
    assert bad["status"] == "failed" and bad["failure"] == "invalid" and "does not divide" in bad["reason"]
    # the rerun (here on the process pool) finds both in the cache and evaluates nothing
    again = sweep(points, opts, workers=1, log=lambda m: None)
    assert again["evaluated"] == 0 and again["cached"] == 2
    assert {k: v for k, v in again["rows"][0].items() if k != "cached"} == \
           {k: v for k, v in ok.items() if k != "cached"}


def test_cli_pool_sweep_writes_table(tmp_path, capsys):
    out = tmp_path / "ex"
    rc = main(["explore", "--channels", "4", "--pe", "4", "--simd", "2", "--dw-parallel", "2",
               "--resolution", "32x32", "--no-synth", "--workers", "1", "--out", str(out), "--quiet",
               "--target-fps", "1e9"])
    assert rc == 0
    brief = json.loads(capsys.readouterr().out)
    assert brief["evaluated"] == 1 and brief["failed"] == 0 and "no evaluated point reaches" in brief["best"]
    rows = list(csv.DictReader((out / "explore.csv").open()))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["pe"] == "4"
    assert "<svg" in (out / "explore.html").read_text() or "no point has" in (out / "explore.html").read_text()
    assert json.loads((out / "explore.json").read_text())["rows"][0]["cycles_per_step"] > 0


def _row(key, fps, lut, dsp=1, device="ecp5-85k", status="ok"):
    return {"key": key, "fps": fps, "lut": lut, "dsp": dsp, "device": device, "status": status, "channels": 16,
            "act_bits": 8, "weight_bits": 8, "pe": 4, "simd": 4, "dw_parallel": 4}


def test_pareto_front_by_hand():
    rows = [_row("a", 10, 100), _row("b", 20, 200), _row("c", 15, 250), _row("d", 5, 100), _row("e", 30, 400),
            _row("f", None, 50)]
    front = pareto_front(rows, ("fps",), ("lut",))
    assert [r["key"] for r in front] == ["a", "b", "e"]      # c (slower, bigger than b) and d (slower than a) lose
    assert [r["key"] for r in pareto_front(rows, (), ("lut", "dsp"))] == ["f"]  # no fps needed here
    assert [r["key"] for r in pareto_front(rows[:5], (), ("lut", "dsp"))] == ["a"]  # a ties d: one kept


def test_best_point():
    rows = [_row("a", 10, 100), _row("b", 20, 200), _row("e", 30, 400), _row("u", 40, 50, device="ice40-up5k"),
            _row("x", 99, 1, status="failed")]
    assert best_point(rows, 15, "ecp5-85k")["point"]["key"] == "b"
    assert best_point(rows, 15)["point"]["key"] == "u"
    none = best_point(rows, 35, "ecp5-85k")
    assert none["point"] is None and "no evaluated point reaches 35 fps on ecp5-85k" in none["statement"]
    assert "fastest: 30.0" in none["statement"]


@pytest.mark.parametrize("args,msg", [
    (["--devices", "ecp5-12k"], "unknown ['ecp5-12k']"),
    (["--channels", "16", "--pe", "3"], "must divide every explore.channels"),
    (["--ray", "not an address"], "--ray 'not an address'"),
    (["--target-fps", "30", "--device", "virtex"], "--device 'virtex' is unknown"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, msg):
    assert main(["explore", "--no-synth", "--out", str(tmp_path), *args]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "explore.json").exists()


def test_config_section_is_validated():
    assert from_dict({}).explore == ExploreConfig()
    with pytest.raises(EdgecodecError, match="explore.pe must be a list of integers"):
        from_dict({"explore": {"pe": ["x"]}})
    with pytest.raises(EdgecodecError, match="explore.act_bits values must be in"):
        from_dict({"explore": {"act_bits": [3]}})
    assert from_dict({"explore": {"pe": 8}}).explore.pe == (8,)


@pytest.mark.slow
def test_pnr_and_asic_points(tmp_path, capsys):
    """--pnr --asic on two real points: the 25k runs out of DSPs (recorded, with used / available), the 85k places
    and routes (fps from its Fmax) and gets a sky130 area and energy per frame."""
    out = tmp_path / "ex"
    rc = main(["explore", "--channels", "4", "--pe", "2", "--simd", "2", "--dw-parallel", "2",
               "--devices", "ecp5-25k,ecp5-85k", "--libraries", "sky130hd", "--resolution", "32x32", "--pnr",
               "--asic", "--workers", "1", "--out", str(out), "--quiet", "--target-fps", "1000",
               "--device", "ecp5-85k"])
    assert rc == 0
    brief = json.loads(capsys.readouterr().out)
    rows = {r["device"]: r for r in json.loads((out / "explore.json").read_text())["rows"]}
    small, big = rows["ecp5-25k"], rows["ecp5-85k"]
    assert small["status"] == "failed" and small["failure"] == "does_not_fit" and "dsp" in small["reason"]
    assert big["status"] == "ok" and big["fit"] == "fits" and big["fmax_mhz"] > 10
    assert big["clock_mhz"] == big["fmax_mhz"] and "nextpnr Fmax" in big["fps_basis"]
    assert big["fps"] == pytest.approx(big["fmax_mhz"] * 1e6 / big["cycles_per_step"])   # a step = a frame
    assert big["area_um2"] > 0 and big["energy_per_frame_mj"] > 0 and big["power_mw"] > 0
    assert big["lut"] > 0 and f"dsp {big['dsp']}/28" in small["reason"]
    best = json.loads((out / "explore.json").read_text())["best"]
    assert best["point"]["key"] == big["key"] and brief["best"] == best["statement"]
