"""STAE end to end on tiny synthetic data: Algorithm 1 stages, resume, the eval table (coded bytes, accuracies,
times, the fixed-point encoder feeding the classifier), the plot, and the planner command."""

from __future__ import annotations

import json

import pytest

from edgecodec import config
from edgecodec.stae import evaluate as stae_eval
from edgecodec.cli import main
from base.errors import EdgecodecError

TINY = {"frames": 4, "size": 16, "classes": 3, "train_per_class": 3, "test_per_class": 2, "vit_dim": 16,
        "vit_depth": 1, "vit_heads": 2, "patch": 8, "fr_width": 4, "alphas": [1, 4], "betas": [1.0, 0.4],
        "classifier_steps": 2, "fa_steps": 2, "sa_steps": 2, "fr_steps": 2, "batch": 4}


N_TEST = TINY["classes"] * TINY["test_per_class"]


def _is_count(acc: float) -> bool:
    """An accuracy in % of the N_TEST test clips: k/N_TEST*100 for an integer 0 <= k <= N_TEST."""
    k = acc * N_TEST / 100
    return abs(k - round(k)) < 1e-6 and 0 <= round(k) <= N_TEST


def test_train_eval_and_resume(tmp_path, monkeypatch):
    cfg = config.from_dict({"stae": {**TINY, "out": str(tmp_path)}})
    r = stae_eval.run(cfg, progress=False)
    assert [(w["alpha"], w["beta"]) for w in r["rows"]] == [(1, 1.0), (1, 0.4), (4, 1.0), (4, 0.4)]
    for w in r["rows"]:
        assert 0 < w["bytes"] < w["bytes_eq1"] and w["ratio"] == pytest.approx(4 * 4 * 3 * 16 * 16 / w["bytes"])
        assert all(w[k] > 0 for k in ("t_fa", "t_ee", "t_ed", "t_vit"))    # measured: every module ran
        assert (w["t_sa"] > 0) == (w["beta"] < 1.0)
        assert _is_count(w["acc_stae"])
    full = [w for w in r["rows"] if w["beta"] == 1.0]
    assert all(w["t_sa"] == 0 and w["acc_fa"] == w["acc_stae"] for w in full)
    fx = r["fixed_point"]
    assert [(f["alpha"], f["beta"]) for f in fx] == [(1, 0.4), (4, 0.4)]
    assert all(_is_count(f["acc_fixed"]) for f in fx)
    assert (tmp_path / "stae_eval.md").is_file() and (tmp_path / "accuracy_vs_latency.png").stat().st_size > 1000
    states = json.loads((tmp_path / "stae_eval.json").read_text())
    assert states["rows"] == json.loads(json.dumps(r["rows"]))
    # every stage of Algorithm 1 is in stae.pt: a rerun trains nothing
    import model.stae.train as st
    monkeypatch.setattr(st, "_fit", lambda *a, **k: pytest.fail("a finished stage was trained again"))
    _, again, *_ = stae_eval.train(cfg, progress=False)
    assert sorted(again) == ["classifier", "fa/a1", "fa/a4", "fr/a1/b40", "fr/a4/b40", "sa/a1/b40", "sa/a4/b40"]


def _table(tmp_path):
    rows = [{"alpha": a, "beta": b, "bytes": by, "accuracy": acc, "t_fa": 0.002, "t_sa": 0.001, "t_ee": 0.001,
             "t_ed": 0.001, "t_fr": 0.004, "t_vit": 0.02}
            for a, b, by, acc in ((16, 1.0, 3_000_000, 73.3), (4, 1.0, 800_000, 70.0), (4, 0.4, 300_000, 68.0),
                                  (1, 0.4, 60_000, 61.0))]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"rows": rows}))
    return str(path)


def test_plan_command(tmp_path, capsys):
    t = _table(tmp_path)
    assert main(["stae", "plan", "--rate", "100Mbps", "--deadline", "100ms", "--table", t]) == 0
    assert "chosen: alpha=4, beta=100%" in capsys.readouterr().out
    assert main(["stae", "plan", "--rate", "10Mbps", "--deadline", "100ms", "--table", t]) == 0
    assert "chosen: alpha=1, beta=40%" in capsys.readouterr().out
    assert main(["stae", "plan", "--rate", "1Mbps", "--deadline", "100ms", "--table", t]) == 1
    assert "no (alpha, beta) meets the deadline" in capsys.readouterr().out
    assert main(["stae", "plan", "--rate", "fast", "--deadline", "100ms", "--table", t]) == 2
    assert main(["stae", "plan", "--rate", "1Mbps", "--deadline", "1ms", "--table", str(tmp_path / "no.json")]) == 2
    assert "stae eval" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [({"alphas": [3]}, "stae.alphas"), ({"betas": [0.35]}, "stae.betas"),
                                          ({"alphas": [16], "frames": 8}, "stae.alphas"),
                                          ({"data": "hmdb51"}, "stae.root")])
def test_bad_budgets_and_data_are_config_errors(bad, message):
    with pytest.raises(EdgecodecError, match=message):
        config.from_dict({"stae": bad})
