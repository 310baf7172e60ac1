"""Layer programs of the decoder engine: descriptors, the memory image, and the host's view of both.

Memory holds bus words of `data_bits` (little-endian bytes); every stream beat of a unit takes one word (its low
bits). A feature map is stored HWC: word ``(y * W + x) * groups + g`` holds channels ``g*n .. g*n+n-1`` of pixel
(y, x), n = PE = SIMD (the engine's PE array is square, so a layer's output words are the next layer's input words).

A descriptor is `DESC_WORDS` words, one field per word (low 32 bits):

    0 flags (bit 0: last descriptor, bit 1: PixelShuffle x2 on the output, bit 2: stride 2, bit 3: ASE-GRU layer,
      bit 4: element-wise add, bit 5: the add has one input, bit 6: the input is two maps concatenated,
      bit 7: frame warp)
    1 C_in / SIMD      2 C_out / PE     3 input height   4 input width of the strip
    5 shift            6 lo (two's complement, 32 bits)  7 hi
    8 weight address   9 weight beats   10 bias address
    11 input address of the strip's first word          12 output address of its first kept word
    13 input row pitch (bytes)   14 output row pitch (bytes; a shuffled map's row)
    15 output pixels dropped per row: left (bits 0-7), right (bits 8-15)

An ASE-GRU layer's descriptor (flag bit 3; `gru_descriptor`) runs one of the GRU units the engine was generated
with (hw.engine.gru_unit) on its whole map: 1 unit, 3 height, 4 width (must be the unit's), 8 address of the pool
sums of h_{t-1} (C words, a signed 32-bit sum in the low bits of each), 9 address of h_{t-1}, 10 address where the
sums of h_t go, 11 x, 12 h_t, 13 x's row pitch, 14 h's row pitch (h_{t-1} and h_t).

An element-wise descriptor (flag bit 4; `add_descriptor`, hw.engine.add_unit) computes clamp(a + b + k, lo, hi)
on every lane of two runs of words (b = 0 with flag bit 5): 1 words, 5 k, 6 lo, 7 hi (two's complement), 9 b's
address, 11 a's, 12 the output's.

A frame-warp descriptor (flag bit 7; `warp_descriptor`, hw.engine.frame_warp) motion-compensates a packed frame
map (`frame_channels` channels): 3 its height, 4 its width (multiples of 8), 9 the block vectors' address (a word
each, block raster order), 11 the reference's address, 12 the warped map's.

Vertical strips: a layer whose input is wider than the unit's `max_width` runs as several descriptors, each on a
strip of columns with a halo column at each inner side (two at the left for stride 2, to keep the centres even);
the unit computes the halo's outputs with zero padding, the sequencer drops them, the kept ones are exact.

PixelShuffle x2: the compiler reorders the convolution's output channels from ``c*4 + s`` to ``s*C' + c`` (s the
sub-pixel ``2i + j``, C' = C_out/4) so each output beat belongs to one sub-pixel; the sequencer then writes the beats
of input pixel (y, x) as two runs of ``2 C'/PE`` words, at output pixels (2y, 2x) and (2y+1, 2x) of the HWC map of
C' channels. The map in memory is the shuffled map, channels in their natural order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from base.errors import EdgecodecError
from hw.engine.layers import ConvLayer
from quant.fixed_point import pack_codes, unpack_codes

DESC_WORDS = 16
FLAG_LAST, FLAG_SHUFFLE, FLAG_STRIDE2, FLAG_GRU, FLAG_ADD, FLAG_ONE_INPUT, FLAG_CONCAT, FLAG_WARP = (1, 2, 4, 8, 16, 32,
                                                                                     64, 128)


@dataclass(frozen=True)
class EngineShape:
    """What an engine was generated for: parallelism, bus and code widths, maxima."""

    pe: int = 2
    simd: int = 2
    data_bits: int = 64
    act_bits: int = 12
    weight_bits: int = 8
    bias_bits: int = 24
    pre_bits: int = 3
    max_shift: int = 23
    max_width: int = 64
    max_cin: int = 64
    max_cout: int = 256
    gru_pe: int = 0          # the ASE-GRU units' folding (PE = SIMD = depth-wise lanes); 0: the array's PE

    @property
    def gru_fold(self) -> int:
        return self.gru_pe or self.pe

    def check(self) -> None:
        if self.pe != self.simd:
            raise EdgecodecError(f"engine: PE ({self.pe}) must equal SIMD ({self.simd}): a layer's output words are the "
                                 "next layer's input words")
        need = {"weight beat": self.pe * self.simd * self.weight_bits, "bias beat": self.pe * (self.bias_bits + self.pre_bits),
                "input beat": self.simd * self.act_bits, "output beat": self.pe * self.act_bits}
        wide = {k: v for k, v in need.items() if v > self.data_bits}
        if wide:
            raise EdgecodecError(f"engine: data_bits={self.data_bits} is narrower than a {', '.join(wide)} "
                                 f"({max(wide.values())} bits)")


def shuffle_order(layer: ConvLayer) -> ConvLayer:
    """The layer with its output channels reordered for the engine's PixelShuffle writes (module docstring)."""
    c = layer.cout // 4
    order = np.array([ch * 4 + s for s in range(4) for ch in range(c)])
    return ConvLayer(weights=layer.weights[order], pre=layer.pre[order], bias=layer.bias[order], stride=layer.stride,
                     shift=layer.shift, lo=layer.lo, hi=layer.hi, out_bits=layer.out_bits, shuffle=layer.shuffle)


def pad_channels(layer: ConvLayer, cin: int, cout: int) -> ConvLayer:
    """The layer with zero input channels appended up to `cin` and zero output channels (weights, bias, pre-shift
    0: their codes are 0 whatever the clamp, as lo <= 0 <= hi) up to `cout`. After a PixelShuffle x2 the new output
    channels are the shuffled map's last ones."""
    if (cin, cout) == (layer.cin, layer.cout):
        return layer
    if not layer.lo <= 0 <= layer.hi:
        raise EdgecodecError(f"engine: cannot pad a layer whose clamp [{layer.lo}, {layer.hi}] excludes 0")
    w = np.zeros((cout, cin) + layer.weights.shape[2:], dtype=np.int64)
    w[:layer.cout, :layer.cin] = layer.weights
    grow = cout - layer.cout
    return ConvLayer(weights=w, pre=np.concatenate([layer.pre, np.zeros(grow, np.int64)]),
                     bias=np.concatenate([layer.bias, np.zeros(grow, np.int64)]), stride=layer.stride,
                     shift=layer.shift, lo=layer.lo, hi=layer.hi, out_bits=layer.out_bits, shuffle=layer.shuffle)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


@dataclass
class Image:
    """A memory image under construction: bus words at byte addresses, regions allocated upwards."""

    word_bytes: int
    words: dict = field(default_factory=dict)
    top: int = 0

    def alloc(self, count: int) -> int:
        addr = self.top
        self.top += ((count * self.word_bytes + 4095) // 4096) * 4096      # regions start on 4 KB pages
        return addr

    def put(self, addr: int, words) -> None:
        for i, w in enumerate(words):
            self.words[addr + i * self.word_bytes] = int(w)

    @classmethod
    def from_bytes(cls, data: bytes, word_bytes: int) -> "Image":
        """The image of a memory dump (every word present, `top` at its end)."""
        return cls(word_bytes, {a: int.from_bytes(data[a:a + word_bytes], "little")
                                for a in range(0, len(data), word_bytes)}, len(data))

    def to_bytes(self) -> bytes:
        out = bytearray(self.top)
        for addr, w in self.words.items():
            out[addr:addr + self.word_bytes] = w.to_bytes(self.word_bytes, "little")
        return bytes(out)


def map_words(x: np.ndarray, lanes: int, bits: int) -> list[int]:
    """HWC words of a (C, H, W) code map, `lanes` channels a word."""
    c, h, w = x.shape
    return [pack_codes(x[g * lanes:(g + 1) * lanes, yy, xx], bits) for yy in range(h) for xx in range(w)
            for g in range(c // lanes)]


def read_map(data: bytes, addr: int, shape: tuple[int, int, int], lanes: int, bits: int, word_bytes: int) -> np.ndarray:
    c, h, w = shape
    out = np.zeros(shape, dtype=np.int64)
    groups = c // lanes
    for yy in range(h):
        for xx in range(w):
            for g in range(groups):
                a = addr + ((yy * w + xx) * groups + g) * word_bytes
                out[g * lanes:(g + 1) * lanes, yy, xx] = unpack_codes(int.from_bytes(data[a:a + word_bytes], "little"),
                                                                lanes, bits)
    return out


@dataclass
class Program:
    image: Image
    program_addr: int
    input_addr: int
    output_addr: int
    output_shape: tuple[int, int, int]      # (C, H, W) of the last layer's map in memory (padded channels included)
    channels: int                           # the real channels of that map (the first ones)
    steps: int                              # PE x SIMD steps of all layers (one a cycle)
    layers: list = field(default_factory=list)   # per layer: (C_in/SIMD, C_out/PE, height, width, stride)


def strips(width: int, stride: int, max_width: int) -> list[tuple[int, int, int, int]]:
    """Vertical strips of a layer's input: (first input column, end, first output column, end). One strip when
    the width fits; otherwise output columns in chunks, each strip's input with its halo (module docstring)."""
    wo = (width - 1) // stride + 1
    if width <= max_width:
        return [(0, width, 0, wo)]
    chunk = (max_width - 2) // stride
    out = []
    for o0 in range(0, wo, chunk):
        o1 = min(wo, o0 + chunk)
        s0 = max(0, stride * o0 - stride)
        s1 = min(width, stride * o1 + (1 if stride == 1 else 0))
        out.append((s0, s1, o0, o1))
    return out


def pixel_output(layer: ConvLayer, offset: int = 128, lo: int = 0, hi: int = 255) -> ConvLayer:
    """The last synthesis layer giving pixels: clamp(clamp(q, lo', hi') + offset, lo, hi) = clamp(q + offset, ...)
    with the offset folded into the bias (offset << shift: the rounding of q + offset is q's, the offset being an
    integer) and the clamps merged (docs/numerics.md, "Reconstruction")."""
    return ConvLayer(weights=layer.weights, pre=layer.pre, bias=layer.bias + (offset << layer.shift),
                     stride=layer.stride, shift=layer.shift, lo=max(layer.lo + offset, lo),
                     hi=min(layer.hi + offset, hi), out_bits=layer.out_bits, shuffle=layer.shuffle)


def compile_stack(layers: list[ConvLayer], height: int, width: int, shape: EngineShape) -> Program:
    """Program and memory image of a convolution stack on an input map of `height` x `width` (the input codes are
    written by `load_input`). Each layer's output map is the next layer's input. Channel counts that the PE array
    does not divide are padded with zero channels (`pad_channels`)."""
    shape.check()
    img = Image(shape.data_bits // 8)
    in_addr = img.alloc(height * width * _round_up(layers[0].cin, shape.simd) // shape.simd)
    st = stack_descriptors(img, layers, height, width, shape, in_addr)
    descs = st.descs
    descs[-1][0] |= FLAG_LAST
    prog = img.alloc(DESC_WORDS * len(descs))
    for i, d in enumerate(descs):
        img.put(prog + i * DESC_WORDS * img.word_bytes, d)
    return Program(img, prog, in_addr, st.output_addr, st.output_shape, st.channels, st.steps, st.run)


@dataclass
class Stack:
    """The descriptors of a convolution stack in an image, and where its output map is."""

    descs: list
    output_addr: int
    output_shape: tuple[int, int, int]
    channels: int
    steps: int
    run: list


def stack_descriptors(img: Image, layers: list[ConvLayer], height: int, width: int, shape: EngineShape,
                      in_addr: int, concat: tuple[int, int] | None = None) -> Stack:
    """Descriptors of a convolution stack reading the map at `in_addr`; weights, biases and output maps allocated
    in `img`. `concat` = (address of a second map, channels of the first): the first layer reads the two maps
    concatenated along channels (both channel counts multiples of SIMD)."""
    shape.check()
    P, S = shape.pe, shape.simd
    h, w, real = height, width, layers[0].cin
    cin = _round_up(real, S)
    descs: list[list[int]] = []
    cur, steps, run = in_addr, 0, []
    if concat is not None and (concat[1] % S or real % S or not 0 < concat[1] < real):
        raise EdgecodecError(f"engine: a concatenated input of {concat[1]} + {real - concat[1]} channels must split "
                             f"in multiples of SIMD={S}")
    for n, layer in enumerate(layers):
        problems = []
        if layer.cin != real:
            problems.append(f"C_in {layer.cin} but the previous map has {real} channels")
        if not problems:
            group = 4 * P if layer.shuffle == 2 else P
            layer = pad_channels(layer, cin, _round_up(layer.cout, group))
        if layer.kernel != 3:
            problems.append(f"kernel {layer.kernel} (the unit is generated for 3)")
        if layer.stride not in (1, 2):
            problems.append(f"stride {layer.stride}")
        if layer.cin > shape.max_cin:
            problems.append(f"C_in {layer.cin} (at most {shape.max_cin})")
        if layer.cout > shape.max_cout:
            problems.append(f"C_out {layer.cout} (at most {shape.max_cout})")
        if layer.shuffle not in (1, 2):
            problems.append(f"PixelShuffle x{layer.shuffle} (the engine writes x2)")
        if shape.max_width < 4:
            problems.append(f"max_width {shape.max_width} (strips need at least 4 columns)")
        if layer.shift > shape.max_shift or int(layer.pre.max()) >= 1 << shape.pre_bits:
            problems.append(f"shift {layer.shift} / pre-shift {int(layer.pre.max())}")
        bmin, bmax = -(1 << (shape.bias_bits - 1)), (1 << (shape.bias_bits - 1)) - 1
        if layer.bias.min() < bmin or layer.bias.max() > bmax:
            problems.append(f"bias beyond {shape.bias_bits} bits")
        wmin, wmax = -(1 << (shape.weight_bits - 1)), (1 << (shape.weight_bits - 1)) - 1
        if layer.weights.min() < wmin or layer.weights.max() > wmax:
            problems.append(f"weights beyond {shape.weight_bits} bits (generate the engine for the checkpoint's "
                            "codec.int_weight_bits: engine_plan.shape_for)")
        if problems:
            raise EdgecodecError(f"engine: layer {n} does not fit the generated engine: " + "; ".join(problems))
        lay = shuffle_order(layer) if layer.shuffle == 2 else layer
        ho, wo = (h - 1) // layer.stride + 1, (w - 1) // layer.stride + 1
        cig, cog = layer.cin // S, layer.cout // P
        wwords = [pack_codes([lay.weights[og * P + p, ig * S + j, ky, kx] for p in range(P) for j in range(S)],
                       shape.weight_bits)
                  for og in range(cog) for ky in range(3) for kx in range(3) for ig in range(cig)]
        lane_bits = shape.bias_bits + shape.pre_bits
        bwords = [sum(((int(lay.bias[og * P + p]) & ((1 << shape.bias_bits) - 1)) |
                       (int(lay.pre[og * P + p]) << shape.bias_bits)) << (p * lane_bits) for p in range(P))
                  for og in range(cog)]
        wa, ba = img.alloc(len(wwords)), img.alloc(len(bwords))
        img.put(wa, wwords)
        img.put(ba, bwords)
        oh, ow, oc = (2 * ho, 2 * wo, layer.cout // 4) if layer.shuffle == 2 else (ho, wo, layer.cout)
        out = img.alloc(oh * ow * oc // P)
        wb = img.word_bytes
        flags = (FLAG_SHUFFLE if layer.shuffle == 2 else 0) | (FLAG_STRIDE2 if layer.stride == 2 else 0)
        out_px_bytes = 2 * (layer.cout // 4 // P) * wb if layer.shuffle == 2 else cog * wb   # per kept pixel
        out_pitch = 2 * wo * (layer.cout // 4 // P) * wb if layer.shuffle == 2 else wo * cog * wb
        for s0, s1, o0, o1 in strips(w, layer.stride, shape.max_width):
            unit_wo = (s1 - s0 - 1) // layer.stride + 1
            ld = (o0 * layer.stride - s0) // layer.stride
            rd = unit_wo - ld - (o1 - o0)
            d = [flags, cig, cog, h, s1 - s0, layer.shift, layer.lo & 0xFFFFFFFF, layer.hi & 0xFFFFFFFF,
                 wa, len(wwords), ba, cur + s0 * cig * wb, out + o0 * out_px_bytes, w * cig * wb,
                 out_pitch, ld | (rd << 8)]
            if concat is not None and n == 0:
                ga, gb = concat[1] // S, cig - concat[1] // S
                d[0] |= FLAG_CONCAT
                d[11] = cur + s0 * ga * wb | (concat[0] + s0 * gb * wb) << 32
                d[13] = w * ga * wb | (w * gb * wb) << 32
                d[15] |= ga << 16
            descs.append(d)
            steps += ho * unit_wo * cog * 9 * cig
            run.append((cig, cog, h, s1 - s0, layer.stride))
        real = layers[n].cout // (4 if layer.shuffle == 2 else 1)
        cur, h, w, cin = out, oh, ow, oc
    return Stack(descs, cur, (cin, h, w), real, steps, run)


def gru_descriptor(unit: int, height: int, width: int, *, sums_in: int, h_prev: int, sums_out: int, x: int,
                   h_out: int, x_pitch: int, h_pitch: int, last: bool = False) -> list[int]:
    """The 16 fields of an ASE-GRU layer's descriptor (module docstring)."""
    return [FLAG_GRU | (FLAG_LAST if last else 0), unit, 0, height, width, 0, 0, 0, sums_in, h_prev, sums_out, x,
            h_out, x_pitch, h_pitch, 0]


def frame_channels(shape: "EngineShape") -> int:
    """Channels of a packed frame map in memory: the 6 of `pack_planes`, zero channels up to a multiple of PE."""
    return _round_up(6, shape.pe)


def warp_descriptor(height: int, width: int, *, ref: int, out: int, vectors: int, last: bool = False) -> list[int]:
    """The 16 fields of a frame-warp descriptor (module docstring)."""
    return [FLAG_WARP | (FLAG_LAST if last else 0), 0, 0, height, width, 0, 0, 0, 0, vectors, 0, ref, out, 0, 0, 0]


def add_descriptor(words: int, *, a: int, out: int, b: int | None = None, k: int = 0, lo: int, hi: int,
                   last: bool = False) -> list[int]:
    """The 16 fields of an element-wise descriptor (module docstring); b None: one input."""
    flags = FLAG_ADD | (FLAG_ONE_INPUT if b is None else 0) | (FLAG_LAST if last else 0)
    return [flags, words, 0, 0, 0, k & 0xFFFFFFFF, lo & 0xFFFFFFFF, hi & 0xFFFFFFFF, 0, 0 if b is None else b, 0,
            a, out, 0, 0, 0]


LAYER_OVERHEAD = 37     # cycles a descriptor adds beyond its loads and its convolution (memory round trips, the
                        # sequencer's state changes and its range check; measured on AxiRam without pauses)


ROW_GAP = 3             # cycles between the last beat of an input row and the first of the next when the unit
                        # waits for it (one read command a row; AxiRam's latency)


def engine_cycles(program: Program, layer_overhead: int = LAYER_OVERHEAD, row_gap: int = ROW_GAP) -> int:
    """Clock cycles of a program (the CYCLES register after it) when memory never pauses: per descriptor the weight
    and bias words (one a cycle), the convolution unit's `layer_cycles` with the read commands' row gap, and a fixed
    overhead."""
    from hw.engine.conv_unit import layer_cycles
    total = 0
    for cig, cog, h, w, stride in program.layers:
        total += cog * 9 * cig + cog + layer_cycles(cin_groups=cig, cout_groups=cog, height=h, width=w,
                                                     stride=stride, row_gap=row_gap) + layer_overhead
    return total


# The P-frame descriptors' costs on AxiRam without pauses (measured at several sizes; the models below equal the
# engine's counter on them: tests/hw/engine/test_engine_p.py).
GRU_OVERHEAD = 242      # a GRU descriptor beyond its pixels: fetch, sums in, the SE phase, the pipeline, sums out
GRU_HIDE = 135          # cycles of reading (x row 0, h row 0) the SE phase hides
ADD_CHUNK_GAP = 3       # cycles a read command of the element-wise descriptor adds
ADD_OVERHEAD = (29, 27)  # one input, two inputs
WARP_READ = 4           # cycles a window pixel's one-word read takes (issue, memory latency, hand-over)
WARP_ROW_GAP = 3        # cycles a block row's write command adds
WARP_BLOCK_EXTRA = 5    # the block vector's read
WARP_OVERHEAD = 27
CONCAT_PIXEL_GAP = 6    # cycles the two read commands of a concatenated input's pixel add


def gru_cycles(channels: int, height: int, width: int, shape: EngineShape) -> int:
    """A GRU descriptor's cycles: the fixed part, a pixel every (C/F)^2 cycles (F = the GRU units' folding,
    `EngineShape.gru_fold`), and the reading of x row 0 and h row 0 (C/PE words a pixel) beyond what the SE phase
    hides."""
    fold, k = channels // shape.gru_fold, channels // shape.pe      # cycles a pixel / words a row pixel
    return (GRU_OVERHEAD + height * width * fold * fold
            + max(0, 2 * k * width - GRU_HIDE))


def add_cycles(words: int, two_inputs: bool) -> int:
    """An element-wise descriptor's cycles over `words` words."""
    return (2 if two_inputs else 1) * (words + ADD_CHUNK_GAP * -(-words // 16)) + ADD_OVERHEAD[two_inputs]


def warp_cycles_frame(height: int, width: int, shape: EngineShape) -> int:
    """A frame warp's cycles on a packed frame of height x width (multiples of 8)."""
    k = frame_channels(shape) // shape.pe
    blocks = (height // 8) * (width // 8)
    return blocks * (WARP_READ * (17 * 17 + 2 * 9 * 9) + 8 * (8 * k + WARP_ROW_GAP) + WARP_BLOCK_EXTRA) + WARP_OVERHEAD


def _fields(img: Image, addr: int) -> list[int]:
    return [img.words.get(addr + i * img.word_bytes, 0) for i in range(DESC_WORDS)]


def descriptor_cycles(img: Image, program_addr: int, shape: EngineShape, grus=()) -> list[tuple[list[int], int]]:
    """(fields, clock cycles) of each descriptor of the program at `program_addr` in `img`, in order, when memory
    never pauses: convolutions as `engine_cycles`, GRU layers (`grus`: the GruSpecs the engine was generated with),
    element-wise adds and frame warps by the models above."""
    from hw.engine.conv_unit import layer_cycles
    out, addr = [], program_addr
    while True:
        f = _fields(img, addr)
        flags = f[0] & 0xFFFFFFFF
        if flags & FLAG_GRU:
            spec = grus[f[1]]
            n = gru_cycles(spec.params.channels, spec.height, spec.width, shape)
        elif flags & FLAG_ADD:
            n = add_cycles(f[1] & 0xFFFFFFFF, not flags & FLAG_ONE_INPUT)
        elif flags & FLAG_WARP:
            n = warp_cycles_frame(f[3] & 0xFFFF, f[4] & 0xFFFF, shape)
        else:
            cig, cog, h, w = f[1] & 0xFF, f[2] & 0xFFFFFFFF, f[3] & 0xFFFF, f[4] & 0xFFFF
            stride = 2 if flags & FLAG_STRIDE2 else 1
            n = cog * 9 * cig + cog + layer_cycles(
                cin_groups=cig, cout_groups=cog, height=h, width=w, stride=stride, row_gap=ROW_GAP,
                pixel_gap=CONCAT_PIXEL_GAP if flags & FLAG_CONCAT else 0) + LAYER_OVERHEAD
        out.append((f, n))
        if flags & FLAG_LAST:
            return out
        addr += DESC_WORDS * img.word_bytes


def program_cycles(img: Image, program_addr: int, shape: EngineShape, grus=()) -> int:
    """Clock cycles of the program at `program_addr` in `img` (the CYCLES register after it) when memory never
    pauses: the sum of `descriptor_cycles`."""
    return sum(n for _, n in descriptor_cycles(img, program_addr, shape, grus))


def load_input(program: Program, x: np.ndarray, shape: EngineShape) -> None:
    """Write the input codes (C, H, W), zero channels appended up to a multiple of SIMD."""
    c = _round_up(x.shape[0], shape.simd)
    padded = np.zeros((c,) + x.shape[1:], dtype=np.int64)
    padded[:x.shape[0]] = x
    program.image.put(program.input_addr, map_words(padded, shape.simd, shape.act_bits))
