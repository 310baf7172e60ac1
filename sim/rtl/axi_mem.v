// A simulation model of a memory behind an AXI4 slave port, for whole-frame benches: the memory is a Verilog array
// (loaded with $readmemh on `load`, written out with $writememh on `dump`), so a burst costs no Python per beat as
// cocotbext-axi's AxiRam does. INCR bursts of full-width beats only (what hw.engine.axi_dma issues); anything else,
// or an address outside the array, raises the sticky `fault` and is answered SLVERR.
//
// Timing follows AxiRam's without pauses, so the engine's cycle model (whose constants were measured on AxiRam)
// holds here too: AR, AW and W each enter a two-deep queue (ready while it has room); a read burst starts on the edge
// after its AR entered (first beat handshaked two edges after AR) and the next queued burst follows its last beat
// without a gap; a W beat is written on the edge after it entered, once its AW has entered; B is valid after the edge
// that wrote the last beat.
// Pauses: with `stall` = s (0..255), each cycle each channel's ready/valid is withheld with probability s/256
// (a 32-bit LFSR per channel, seeded from SEED), so every AXI channel sees random pauses; s = 0: none.
module axi_mem #(
    parameter DATA_BITS = 128,
    parameter DEPTH_LOG2 = 18,
    parameter SEED = 1
) (
    input clk, input rst, input load, input dump, input [7:0] stall, output reg fault,
    input [31:0] araddr, input [7:0] arlen, input [2:0] arsize, input [1:0] arburst, input arid, input arvalid,
    output arready,
    output [DATA_BITS-1:0] rdata, output [1:0] rresp, output rlast, output rvalid, output rid, input rready,
    input [31:0] awaddr, input [7:0] awlen, input [2:0] awsize, input [1:0] awburst, input awid, input awvalid,
    output awready,
    input [DATA_BITS-1:0] wdata, input [DATA_BITS/8-1:0] wstrb, input wlast, input wvalid, output wready,
    output [1:0] bresp, output bvalid, output bid, input bready
);
    localparam BYTES = DATA_BITS / 8;
    localparam SHIFT = $clog2(BYTES);
    reg [DATA_BITS-1:0] mem [0:(1 << DEPTH_LOG2) - 1];

    always @(posedge clk) begin
        if (load) $readmemh("mem_in.hex", mem);
        if (dump) $writememh("mem_out.hex", mem);
    end

    // one LFSR per channel (AR, R, AW, W, B); go[i] = this cycle the channel may move
    reg [31:0] lfsr [0:4];
    wire [4:0] go;
    genvar g;
    generate for (g = 0; g < 5; g = g + 1) begin : pauses
        assign go[g] = (stall == 0) || (lfsr[g][7:0] >= stall);
        always @(posedge clk) begin
            if (rst) lfsr[g] <= SEED * 32'h9E3779B9 + (g + 1) * 32'h7F4A7C15;
            else lfsr[g] <= {lfsr[g][30:0], lfsr[g][31] ^ lfsr[g][21] ^ lfsr[g][1] ^ lfsr[g][0]};
        end
    end endgenerate

    function bad_burst(input [31:0] addr, input [7:0] len, input [2:0] size, input [1:0] burst);
        bad_burst = ((addr >> SHIFT) + len) >= (1 << DEPTH_LOG2) || addr[SHIFT-1:0] != 0 || size != SHIFT ||
                    burst != 2'b01;
    endfunction

    // ---- read: AR queue (two entries) -> burst engine
    reg [DEPTH_LOG2-1:0] arq_addr [0:1];
    reg [7:0] arq_len [0:1];
    reg arq_bad [0:1], arq_id [0:1];
    reg arq_head;
    reg [1:0] arq_n;
    reg reading, r_bad, r_id;
    reg [DEPTH_LOG2-1:0] r_addr;
    reg [7:0] r_left;
    assign arready = arq_n != 2 && go[0];
    assign rvalid = reading && go[1];
    assign rdata = r_bad ? {DATA_BITS{1'b0}} : mem[r_addr];
    assign rresp = r_bad ? 2'b10 : 2'b00;
    assign rlast = r_left == 0;
    assign rid = r_id;
    wire ar_push = arvalid && arready;
    wire r_end = rvalid && rready && rlast;
    wire ar_pop = arq_n != 0 && (!reading || r_end);
    always @(posedge clk) begin
        if (rst) begin
            reading <= 0;
            arq_n <= 0;
            arq_head <= 0;
        end else begin
            if (ar_push) begin
                arq_addr[arq_head ^ arq_n[0]] <= araddr >> SHIFT;
                arq_len[arq_head ^ arq_n[0]] <= arlen;
                arq_id[arq_head ^ arq_n[0]] <= arid;
                arq_bad[arq_head ^ arq_n[0]] <= bad_burst(araddr, arlen, arsize, arburst);
            end
            arq_n <= arq_n + ar_push - ar_pop;
            if (ar_pop) begin
                arq_head <= !arq_head;
                reading <= 1;
                r_addr <= arq_addr[arq_head];
                r_left <= arq_len[arq_head];
                r_id <= arq_id[arq_head];
                r_bad <= arq_bad[arq_head];
            end else if (rvalid && rready) begin
                r_addr <= r_addr + 1;
                r_left <= r_left - 1;
                if (r_end) reading <= 0;
            end
        end
    end

    // ---- write: AW queue and W queue (two entries each) -> memory; B queue (two entries)
    reg [DEPTH_LOG2-1:0] awq_addr [0:1];
    reg awq_bad [0:1], awq_id [0:1];
    reg awq_head;
    reg [1:0] awq_n;
    reg [DATA_BITS-1:0] wq_data [0:1];
    reg [BYTES-1:0] wq_strb [0:1];
    reg wq_last [0:1];
    reg wq_head;
    reg [1:0] wq_n;
    reg writing, w_bad, w_id;
    reg [DEPTH_LOG2-1:0] w_addr;
    reg bq_bad [0:1], bq_id [0:1];
    reg bq_head;
    reg [1:0] bq_n;
    integer i;
    assign awready = awq_n != 2 && go[2];
    assign wready = wq_n != 2 && go[3];
    assign bvalid = bq_n != 0 && go[4];
    assign bresp = bq_bad[bq_head] ? 2'b10 : 2'b00;
    assign bid = bq_id[bq_head];
    wire aw_push = awvalid && awready;
    wire w_push = wvalid && wready;
    wire b_pop = bvalid && bready;
    // a burst is open (`writing`) or opens now from the AW queue; a queued W beat is written each edge
    wire aw_pop = !writing && awq_n != 0;
    wire open_bad = writing ? w_bad : awq_bad[awq_head];
    wire open_id = writing ? w_id : awq_id[awq_head];
    wire [DEPTH_LOG2-1:0] open_addr = writing ? w_addr : awq_addr[awq_head];
    wire w_pop = (writing || awq_n != 0) && wq_n != 0 && !(wq_last[wq_head] && bq_n == 2 && !b_pop);
    wire b_push = w_pop && wq_last[wq_head];
    always @(posedge clk) begin
        if (rst) begin
            writing <= 0;
            awq_n <= 0;
            awq_head <= 0;
            wq_n <= 0;
            wq_head <= 0;
            bq_n <= 0;
            bq_head <= 0;
        end else begin
            if (aw_push) begin
                awq_addr[awq_head ^ awq_n[0]] <= awaddr >> SHIFT;
                awq_id[awq_head ^ awq_n[0]] <= awid;
                awq_bad[awq_head ^ awq_n[0]] <= bad_burst(awaddr, awlen, awsize, awburst);
            end
            if (w_push) begin
                wq_data[wq_head ^ wq_n[0]] <= wdata;
                wq_strb[wq_head ^ wq_n[0]] <= wstrb;
                wq_last[wq_head ^ wq_n[0]] <= wlast;
            end
            wq_n <= wq_n + w_push - w_pop;
            if (w_pop) begin
                wq_head <= !wq_head;
                if (!open_bad)
                    for (i = 0; i < BYTES; i = i + 1)
                        if (wq_strb[wq_head][i]) mem[open_addr][8 * i +: 8] <= wq_data[wq_head][8 * i +: 8];
                w_addr <= open_addr + 1;
                w_bad <= open_bad;
                w_id <= open_id;
                writing <= !wq_last[wq_head];
            end
            // the AW queue entry is consumed when its burst opens and takes its first beat
            if (aw_pop && w_pop) awq_head <= !awq_head;
            awq_n <= awq_n + aw_push - (aw_pop && w_pop);
            if (b_push) begin
                bq_bad[bq_head ^ bq_n[0]] <= open_bad;
                bq_id[bq_head ^ bq_n[0]] <= open_id;
            end
            if (b_pop) bq_head <= !bq_head;
            bq_n <= bq_n + b_push - b_pop;
        end
    end

    always @(posedge clk) begin
        if (rst) fault <= 0;
        else if ((ar_push && bad_burst(araddr, arlen, arsize, arburst)) ||
                 (aw_push && bad_burst(awaddr, awlen, awsize, awburst)))
            fault <= 1;
    end
endmodule
