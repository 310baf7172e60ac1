"""FPGA implementation: byte-stream wrapper, device table, yosys + nextpnr bitstreams, Xilinx estimate."""
