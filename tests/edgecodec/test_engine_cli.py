"""`edgecodec engine-verilog`: the engine a team takes to its board, for a checkpoint and a frame size."""

from __future__ import annotations

from edgecodec.cli import main


def test_engine_verilog_writes_the_ip_block_and_refuses_a_bad_array(tmp_path, capsys):
    out = tmp_path / "engine_top.v"
    assert main(["engine-verilog", "--resolution", "64x64", "--pe", "2", "--gru-pe", "1", "-o", str(out)]) == 0
    text = out.read_text()
    assert "module engine_top(" in text and "m_axi__araddr" in text and "s_axil__wdata" in text
    assert main(["engine-verilog", "--resolution", "64x64", "--pe", "3", "-o", str(tmp_path / "x.v")]) == 2
    assert "powers of two" in capsys.readouterr().err and not (tmp_path / "x.v").exists()
