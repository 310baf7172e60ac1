"""Configuration: one YAML file, one section per layer. The layers own their sections (`model.config`,
`quant.config`, `hw.config`); this module composes them with the application's (training, flow, codec, STAE).
Every value is validated before anything is built, so a configuration that cannot work fails with a message
naming the field.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from base.errors import EdgecodecError
from base.errors import check_config as _check
from hw.config import AsicConfig, FpgaConfig, HwConfig
from model.config import ModelConfig
from quant.config import QuantConfig


@dataclass(frozen=True)
class TrainConfig:
    """Proxy-task training on real footage (luma, next-frame prediction)."""

    clips: tuple[str, ...] = ("data/video/CiscoVT2people_320x192_12fps.y4m",
                              "data/video/cars_320x240.y4m")
    seq_len: int = 6
    crop: int = 128
    batch: int = 4
    float_steps: int = 400
    qat_steps: int = 150
    lr: float = 2e-3
    seed: int = 0

    def validate(self) -> None:
        _check(len(self.clips) >= 1, "train.clips must name at least one clip")
        _check(self.seq_len >= 2, "train.seq_len must be >= 2")
        _check(self.crop >= 16 and self.crop % 16 == 0, "train.crop must be a multiple of 16, >= 16")
        _check(self.batch >= 1 and self.float_steps >= 0 and self.qat_steps >= 0, "train.batch/steps must be >= 0")
        _check(self.lr > 0, "train.lr must be > 0")


@dataclass(frozen=True)
class FlowConfig:
    """What `edgecodec flow` verifies and where it writes."""

    clip: str = "data/video/CiscoVT2people_320x192_12fps.y4m"
    frames: int = 8
    layer: int = 0
    simulator: str = "verilator"
    build_dir: str = "build/flow"
    checkpoint: str = "build/flow/checkpoint.pt"

    def validate(self, model: ModelConfig) -> None:
        _check(self.frames >= 1, "flow.frames must be >= 1")
        _check(0 <= self.layer < model.layers, f"flow.layer must be in [0, {model.layers - 1}]")
        _check(self.simulator in ("icarus", "verilator"), "flow.simulator must be 'icarus' or 'verilator'")


@dataclass(frozen=True)
class BaselineConfig:
    """Software baseline (`edgecodec baseline`): the float cell on the torch device.

    Parameters
    ----------
    device : 'auto' (CUDA if present, else CPU), 'cpu' or 'cuda'.
    resolutions : frame sizes WIDTHxHEIGHT; the cell runs on frame / model.downsample.
    warmup, iters : untimed and timed steps per resolution.
    """

    device: str = "auto"
    resolutions: tuple[str, ...] = ("320x192", "640x360", "1280x720", "1920x1080")
    warmup: int = 5
    iters: int = 20

    def validate(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda"), "baseline.device must be auto, cpu or cuda")
        _check(len(self.resolutions) >= 1, "baseline.resolutions must name at least one WIDTHxHEIGHT")
        for r in self.resolutions:
            parse_resolution(r)
        _check(self.warmup >= 0 and self.iters >= 1, "baseline.warmup must be >= 0 and baseline.iters >= 1")


@dataclass(frozen=True)
class CodecConfig:
    """The ASE-GRU video codec (model/codec/network.py); its ASE-GRU layers take channels/layers/r/kernels from `model`.

    Parameters
    ----------
    features, latent, hyper, context : conv widths, latent y channels, hyper-latent z channels, channels of the
        warped frame's context features (conditional P decoder).
    intra_features, intra_latent : conv widths and latent y channels of the I-frame codec; 0 = `features`,
        `latent` (docs/codec.md: the I-frame's ceiling).
    intra_analysis : conv widths of the I-frame analysis g_a alone (the encoder side: no decoder MACs); 0 = the
        I-frame codec's width.
    lambdas : lambda of L = L_D + lambda R per quality, quality 1 first (lowest rate); L_D is
        255^2 MSE + ssim_weight (1 - SSIM_Y) on 0..1 frames and R is bits per luma pixel.
    motion_lambda : the encoder's block search weighs a vector bit as motion_lambda * lambda luma SSE (code units).
    search_range : the encoder's block search range in luma pixels (integer full search, then half/quarter pel).
    gop : frames per group of pictures (one I-frame, then low-delay P-frames).
    int_act_bits, int_weight_bits : widths of the hardware-exact integer model outside the ASE-GRU cells (the
        cells use `quant`).
    int_lut_bits, int_lut_frac : the LUT input width L and fractional bits fL of the codec's ASE-GRU cells (the
        rest of their widths is `quant`'s; docs/numerics.md). Like the two above they shape only the export.
    checkpoints : folder of the per-quality checkpoints codec_q<N>.pt (shipped ones in checkpoints/).
    eval_clip, eval_frames : what `edgecodec eval` codes by default.
    """

    features: int = 32
    latent: int = 32
    hyper: int = 32
    context: int = 16
    intra_features: int = 0
    intra_latent: int = 0
    intra_analysis: int = 0
    lambdas: tuple[float, ...] = (1024.0, 512.0, 256.0, 128.0)
    motion_lambda: float = 1.0
    search_range: int = 16
    ssim_weight: float = 200.0
    gop: int = 8
    int_act_bits: int = 12
    int_weight_bits: int = 8
    int_lut_bits: int = 8
    int_lut_frac: int = 4
    checkpoints: str = "checkpoints"
    eval_clip: str = "data/video/carphone_176x144_qp10.mp4"
    eval_frames: int = 32

    def validate(self) -> None:
        for k in ("features", "latent", "hyper", "context"):
            _check(getattr(self, k) >= 1, f"codec.{k} must be >= 1")
        for k in ("intra_features", "intra_latent", "intra_analysis"):
            _check(getattr(self, k) >= 0, f"codec.{k} must be >= 0 (0: the default width)")
        _check(1 <= len(self.lambdas) <= 16 and all(v > 0 for v in self.lambdas),
               "codec.lambdas must list 1..16 positive values (one per quality)")
        _check(self.motion_lambda > 0 and self.ssim_weight >= 0, "codec.motion_lambda must be > 0 and "
               "codec.ssim_weight >= 0")
        # vectors reach 4 * range + 3 quarter pels, their median differences twice that: within +-255 coded
        _check(1 <= self.search_range <= 31, "codec.search_range must be in [1, 31] pixels (the vector "
               "differences must fit the coded symbol range +-255)")
        _check(1 <= self.gop <= 65535, "codec.gop must be in [1, 65535]")
        _check(6 <= self.int_act_bits <= 16, "codec.int_act_bits must be in [6, 16]")
        _check(4 <= self.int_weight_bits <= 12, "codec.int_weight_bits must be in [4, 12]")
        _check(4 <= self.int_lut_bits <= 12, "codec.int_lut_bits must be in [4, 12]")
        _check(0 <= self.int_lut_frac <= self.int_lut_bits - 1,
               "codec.int_lut_frac must be in [0, codec.int_lut_bits - 1]")
        _check(self.eval_frames >= 1, "codec.eval_frames must be >= 1")

    def cell_quant(self, quant: QuantConfig) -> QuantConfig:
        """The widths of the codec's ASE-GRU cells: `quant` with this section's LUT input width and grid."""
        return dataclasses.replace(quant, lut_bits=self.int_lut_bits, lut_frac=self.int_lut_frac)


@dataclass(frozen=True)
class CodecTrainConfig:
    """Training recipe of the codec (`edgecodec train`): random crops of sequences, I then P stages.

    Parameters
    ----------
    data : files and folders (Y4M/MP4/PNG sequences, or a Vimeo-90K septuplet root).
    crop : square luma crop (multiple of 64); seq_len : frames per sample (1 I-frame, then P-frames).
    intra_steps, inter_steps : Adam steps of the intra stage and of the P stage of the highest quality (trained
        first, from scratch); finetune_intra_steps, finetune_steps : steps of the intra stage and of the P stage of
        every lower quality, started from the next higher one (intra steps cost a tenth of a P step).
    search_range : the block search's range (luma pixels) on training crops.
    rate_warmup : steps over which lambda ramps up from 0 in the P stage of the highest quality (the P path
        collapses to sending nothing without it, docs/codec.md).
    scales : training-data augmentation: a sample may be a crop of crop x s pixels box-averaged down by s, for s
        in scales (the frame must hold it); (1,) = crops at the frames' own resolution.
    p_seq_len : frames per sample of the P stages (1 I-frame, then p_seq_len - 1 P-frames, each coded from the
        previous reconstruction); 0 = seq_len. A GOP's worth trains the P path on the references it meets late in
        a GOP (the drift).
    ref_grad : P stages: the loss's gradient also flows into each P-frame's reference (the previous reconstruction,
        detached when false), so training sees what a frame's quality is worth to the frames coded from it.
    intra_restart_steps : a second cosine cycle of the highest quality's intra stage (a warm restart: learning rate
        back to lr, a fresh Adam) of this many steps after the first intra_steps; 0 = none. A recipe with it starts
        from the kept first cycle (`codec_q<N>.intra.pt` of the same recipe without it) when there is one. With
        intra_from, the restart is the only intra stage: one more cycle from that file's I-frame codec.
    inter_restart_steps : the same for the highest quality's P stage: a second cosine cycle of this many steps after
        the first inter_steps, on a fresh Adam and freshly seeded generators (so its start is the first cycle's
        weights alone); 0 = none. A recipe with it starts from the first cycle's checkpoint (`codec_q<N>.inter.pt`,
        kept when a restart follows, or a `codec_q<N>.pt` of the same recipe without it) when there is one.
    intra_from : a codec checkpoint (codec_q<N>.pt) or kept intra stage (codec_q<N>.intra.pt) whose I-frame codec
        replaces the highest quality's intra stage ("" = train it): a recipe that changes only the P path (its
        widths, `model`) starts from a finished intra codec; the recipe key takes the file's content hash. With
        intra_restart_steps, that codec trains one more cosine cycle first.
    """

    data: tuple[str, ...] = ("data/video/CiscoVT2people_320x192_12fps.y4m",
                             "data/video/cars_320x240.y4m")
    crop: int = 128
    seq_len: int = 4
    batch: int = 8
    intra_steps: int = 1500
    inter_steps: int = 1500
    finetune_intra_steps: int = 600
    finetune_steps: int = 600
    search_range: int = 8
    rate_warmup: int = 0
    scales: tuple[int, ...] = (1,)
    p_seq_len: int = 0
    ref_grad: bool = False
    intra_restart_steps: int = 0
    inter_restart_steps: int = 0
    intra_from: str = ""
    lr: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        _check(len(self.data) >= 1, "codec_train.data must name at least one file or folder")
        _check(len(self.scales) >= 1 and len(set(self.scales)) == len(self.scales)
               and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8 for v in self.scales),
               "codec_train.scales must be distinct integers in [1, 8]")
        _check(1 <= self.search_range <= 63, "codec_train.search_range must be in [1, 63] pixels")
        _check(self.rate_warmup >= 0, "codec_train.rate_warmup must be >= 0")
        _check(self.crop >= 64 and self.crop % 64 == 0, "codec_train.crop must be a multiple of 64")
        _check(self.seq_len >= 2, "codec_train.seq_len must be >= 2 (an I-frame and a P-frame)")
        _check(self.p_seq_len == 0 or self.p_seq_len >= 2,
               "codec_train.p_seq_len must be 0 (= seq_len) or >= 2 (an I-frame and a P-frame)")
        _check(self.batch >= 1, "codec_train.batch must be >= 1")
        _check(min(self.intra_steps, self.inter_steps, self.finetune_intra_steps, self.finetune_steps,
                   self.intra_restart_steps, self.inter_restart_steps) >= 0, "codec_train steps must be >= 0")
        _check(self.lr > 0, "codec_train.lr must be > 0")


@dataclass(frozen=True)
class StaeConfig:
    """STAE (seed 001): semantic compression for action recognition (`edgecodec stae train|eval|plan`).

    Parameters
    ----------
    data : 'synthetic' (generated labelled clips, see model/stae/data.py), 'hmdb51' or 'ucf101' (root +
        split_dir + split of the official layout).
    frames, size : F frames of size x size RGB per clip; classes, train_per_class, test_per_class: synthetic set.
    vit_dim, vit_depth, vit_heads, patch, tubelet : the video ViT classifier (ViT-Base: 768, 12, 12, 16, 2).
    fr_width : width of the feature-recovery CNNs.
    alphas, betas : the frame and spatial budgets trained and evaluated (subsets of {1,2,4,8,16} and
        {1.0, 0.9, ..., 0.4}).
    classifier_steps, fa_steps, sa_steps, fr_steps : Adam steps of each stage of Algorithm 1.
    out : folder of the trained models, the eval table and plots.
    """

    data: str = "synthetic"
    root: str = ""
    split_dir: str = ""
    split: int = 1
    frames: int = 16
    size: int = 32
    classes: int = 6
    train_per_class: int = 60
    test_per_class: int = 20
    vit_dim: int = 64
    vit_depth: int = 2
    vit_heads: int = 4
    patch: int = 8
    tubelet: int = 1
    fr_width: int = 16
    alphas: tuple[float, ...] = (1.0, 4.0, 16.0)
    betas: tuple[float, ...] = (1.0, 0.4)
    classifier_steps: int = 400
    fa_steps: int = 150
    sa_steps: int = 150
    fr_steps: int = 150
    batch: int = 16
    lr: float = 1e-3
    seed: int = 0
    out: str = "build/stae"

    def validate(self) -> None:
        _check(self.data in ("synthetic", "hmdb51", "ucf101"), "stae.data must be synthetic, hmdb51 or ucf101")
        _check(self.data == "synthetic" or (self.root and self.split_dir),
               "stae.root and stae.split_dir must name the dataset and its split files")
        _check(self.frames in (1, 2, 4, 8, 16), "stae.frames must be one of 1, 2, 4, 8, 16")
        _check(self.size >= 8 and self.size % self.patch == 0, "stae.size must be a multiple of stae.patch, >= 8")
        _check(self.size % 4 == 0, "stae.size must be a multiple of 4 (feature recovery halves it twice)")
        _check(self.vit_dim % self.vit_heads == 0, "stae.vit_dim must be a multiple of stae.vit_heads")
        _check(all(a in (1, 2, 4, 8, 16) and a <= self.frames for a in self.alphas) and self.alphas,
               f"stae.alphas must be in {{1, 2, 4, 8, 16}} and <= frames={self.frames}")
        _check(all(any(abs(b - s) < 1e-9 for s in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)) for b in self.betas)
               and self.betas, "stae.betas must be in {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4}")
        _check(self.classes >= 2 and self.train_per_class >= 1 and self.test_per_class >= 1,
               "stae.classes >= 2 and per-class counts >= 1")
        _check(min(self.classifier_steps, self.fa_steps, self.sa_steps, self.fr_steps) >= 0 and self.batch >= 1
               and self.lr > 0, "stae steps >= 0, batch >= 1, lr > 0")


@dataclass(frozen=True)
class EngineConfig:
    """Stage `engine` of `edgecodec flow`: the decoder engine generated with a PE x SIMD array (bus width from PE,
    edgecodec.engine_plan.bus_bits) and the first `frames` frames of codec.eval_clip, coded at `quality` with GOP
    codec.gop, decoded on its RTL (Verilator, the memory model of sim/rtl/axi_mem.v with AXI pauses of
    `stall`/256 per channel)."""

    pe: int = 8
    simd: int = 8
    max_width: int = 64
    quality: int = 1
    frames: int = 4
    stall: int = 0

    def validate(self) -> None:
        _check(self.pe in (1, 2, 4, 8, 16, 32) and self.simd == self.pe,
               "engine.pe must be a power of two up to 32 and engine.simd equal to it (square arrays)")
        _check(self.max_width >= 8 and self.max_width & (self.max_width - 1) == 0,
               "engine.max_width must be a power of two >= 8")
        _check(self.quality >= 1, "engine.quality must be >= 1")
        _check(self.frames >= 1, "engine.frames must be >= 1")
        _check(0 <= self.stall <= 255, "engine.stall must be in 0..255")


@dataclass(frozen=True)
class PruneConfig:
    """Structured pruning of a trained codec (`edgecodec prune`, seed 002, docs/pruning.md): a dense teacher
    checkpoint is gated, trained with its rate-distortion loss + a MAC-budget loss + layer-wise distillation, and
    shrunk. Data, crops, batch and block search come from `codec_train`, lambda from the teacher.

    Parameters
    ----------
    budget : fraction of the decoder's MACs (GOP mean at `resolution`) to remove, in (0, 1).
    method : gd (gradient decay, beta annealed 1 -> 0 between decay_start and decay_end), ste (beta = 1, the
        straight-through estimator) or hard (beta = 0, plain hard masking).
    multiple : kept channels of every group snap to a multiple of it (the accelerator's PE / SIMD).
    steps : training steps; lr (weights: Adam, cosine schedule), tau_lr (thresholds: the one the budget pulls hardest
        moves by tau_lr a step, the others in proportion to their pull); temperature of the soft
        kept-fraction estimate.
    budget_weight : weight of (hard MAC fraction - (1 - budget)) x soft MAC fraction in the loss (two-sided: pushes
        the thresholds up while the hard masks keep too many MACs, down while they keep too few).
    ramp : fraction of `steps` over which the budget's target falls linearly from the dense model to 1 - budget
        (0: the whole budget from the first step); the masks follow it instead of jumping there at once.
    min_keep, min_keep_hidden : every group keeps at least this fraction of its channels (the ASE-GRU hidden
        group at least min_keep_hidden), whatever the budget asks.
    floors : per-group floors that replace min_keep for the groups they name, as "GROUP=FRACTION" (e.g.
        "inter.synth.0=0.5": the layers that write the outputs kept wider, docs/pruning.md); () = none.
    distill_weight : weight of the current distillation stage's mean cosine distance (1 - cos per pixel).
    stage_threshold, stage_steps : a distillation stage (intra -> P path -> whole codec) ends when the budget is
        met and its distance (moving average) is below stage_threshold, or after stage_steps steps.
    decay_start, decay_end : fractions of `steps` between which gd's beta falls from 1 to 0.
    resolution : frame size of the reported decoder MACs and of the budget.
    save_every : steps between resume states; seed : of crops, noise and initial state.
    out : folder of the pruned checkpoints (codec_q<N>.pt, N the teacher's quality).
    """

    budget: float = 0.5
    method: str = "gd"
    multiple: int = 4
    steps: int = 2000
    lr: float = 5e-4
    tau_lr: float = 1e-2
    temperature: float = 0.1
    budget_weight: float = 200.0
    ramp: float = 0.5
    min_keep: float = 0.25
    min_keep_hidden: float = 0.5
    floors: tuple[str, ...] = ()
    distill_weight: float = 100.0
    stage_threshold: float = 0.02
    stage_steps: int = 500
    decay_start: float = 0.0
    decay_end: float = 0.6
    resolution: str = "1920x1080"
    save_every: int = 100
    seed: int = 0
    out: str = "build/prune"

    def validate(self) -> None:
        _check(0.0 < self.budget < 1.0, f"prune.budget must be in (0, 1): the fraction of decoder MACs to remove "
               f"(got {self.budget})")
        _check(self.method in ("gd", "ste", "hard"), "prune.method must be gd, ste or hard")
        _check(self.multiple >= 1, "prune.multiple must be >= 1")
        _check(self.steps >= 1 and self.stage_steps >= 1 and self.save_every >= 1,
               "prune.steps, prune.stage_steps and prune.save_every must be >= 1")
        _check(self.lr > 0 and self.tau_lr > 0 and self.temperature > 0,
               "prune.lr, prune.tau_lr and prune.temperature must be > 0")
        _check(self.budget_weight >= 0 and self.distill_weight >= 0 and self.stage_threshold >= 0,
               "prune.budget_weight, prune.distill_weight and prune.stage_threshold must be >= 0")
        _check(0.0 <= self.ramp <= 1.0, f"prune.ramp must be in [0, 1] (a fraction of steps), got {self.ramp}")
        _check(0.0 <= self.min_keep <= 1.0 and 0.0 <= self.min_keep_hidden <= 1.0,
               "prune.min_keep and prune.min_keep_hidden must be in [0, 1] (fractions of a group's channels)")
        self.floor_map()
        _check(0.0 <= self.decay_start < self.decay_end <= 1.0,
               "prune.decay_start and prune.decay_end must satisfy 0 <= start < end <= 1 (fractions of steps)")
        parse_resolution(self.resolution)

    def floor_map(self) -> dict[str, float]:
        """`floors` as {group: fraction} (EdgecodecError naming a malformed entry or a fraction outside [0, 1])."""
        out = {}
        for item in self.floors:
            name, sep, value = str(item).partition("=")
            try:
                frac = float(value)
            except ValueError:
                frac = None
            _check(bool(sep and name.strip()) and frac is not None and 0.0 <= frac <= 1.0,
                   f"prune.floors: {item!r} is not GROUP=FRACTION with a fraction in [0, 1]")
            out[name.strip()] = frac
        return out


EXPLORE_DEVICES = ("ecp5-25k", "ecp5-45k", "ecp5-85k", "ice40-up5k", "xilinx-xc7")
ASIC_LIBRARIES = ("sky130hd", "gf180mcu", "sg13g2")   # = hw.asic.LIBRARIES (not imported: config stays light)


@dataclass(frozen=True)
class ExploreConfig:
    """Design-space exploration (`edgecodec explore`, README "Design-space exploration"): the grid of cells swept.

    Parameters
    ----------
    pe, simd, dw_parallel : folding values (each must divide every swept channel count).
    act_bits, weight_bits : activation / weight code widths (4..12).
    channels : cell widths C.
    devices : FPGA targets: ecp5-25k, ecp5-45k, ecp5-85k, ice40-up5k, xilinx-xc7 (a yosys estimate, no fit check).
    libraries : ASIC libraries for `--asic` (sky130hd, gf180mcu, sg13g2).
    resolution : frame WIDTHxHEIGHT; the cell runs on the frame / model.downsample.
    clock_mhz : clock for fps without place and route (0 = nextpnr's default target: ECP5 50, iCE40 24, xc7 100).
    sample : 0 = the whole grid; N = N points drawn from it with `seed`.
    point_timeout_s : seconds a point may take before it is recorded as failed (0 = no limit).
    out : folder of the table, plots and cache.
    """

    pe: tuple[int, ...] = (2, 4)
    simd: tuple[int, ...] = (4,)
    dw_parallel: tuple[int, ...] = (4,)
    act_bits: tuple[int, ...] = (8,)
    weight_bits: tuple[int, ...] = (8,)
    channels: tuple[int, ...] = (16,)
    devices: tuple[str, ...] = ("ecp5-85k",)
    libraries: tuple[str, ...] = ("sky130hd",)
    resolution: str = "320x192"
    clock_mhz: float = 0.0
    sample: int = 0
    seed: int = 0
    point_timeout_s: float = 3600.0
    out: str = "build/explore"

    def validate(self) -> None:
        for name in ("pe", "simd", "dw_parallel", "act_bits", "weight_bits", "channels", "devices", "libraries"):
            _check(len(getattr(self, name)) >= 1, f"explore.{name} must list at least one value")
        for name in ("pe", "simd", "dw_parallel", "channels"):
            _check(all(v >= 1 for v in getattr(self, name)), f"explore.{name} values must be >= 1")
        for name in ("act_bits", "weight_bits"):
            _check(all(4 <= v <= 12 for v in getattr(self, name)), f"explore.{name} values must be in [4, 12]")
        for c in self.channels:
            for name in ("pe", "simd", "dw_parallel"):
                bad = [v for v in getattr(self, name) if c % v]
                _check(not bad, f"explore.{name} {bad} must divide every explore.channels value (C={c})")
        bad = [d for d in self.devices if d not in EXPLORE_DEVICES]
        _check(not bad, f"explore.devices: unknown {bad}; choose from {', '.join(EXPLORE_DEVICES)}")
        bad = [lib for lib in self.libraries if lib not in ASIC_LIBRARIES]
        _check(not bad, f"explore.libraries: unknown {bad}; choose from {', '.join(ASIC_LIBRARIES)}")
        parse_resolution(self.resolution)
        _check(self.clock_mhz >= 0, "explore.clock_mhz must be >= 0")
        _check(self.sample >= 0, "explore.sample must be >= 0 (0 = the whole grid)")
        _check(self.point_timeout_s >= 0, "explore.point_timeout_s must be >= 0 (0 = no limit)")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    hw: HwConfig = field(default_factory=HwConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    fpga: FpgaConfig = field(default_factory=FpgaConfig)
    asic: AsicConfig = field(default_factory=AsicConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    codec_train: CodecTrainConfig = field(default_factory=CodecTrainConfig)
    stae: StaeConfig = field(default_factory=StaeConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)

    def validate(self) -> "Config":
        self.model.validate()
        self.quant.validate()
        self.hw.validate(self.model)
        self.train.validate()
        self.flow.validate(self.model)
        self.fpga.validate()
        self.asic.validate()
        self.baseline.validate()
        self.codec.validate()
        self.codec_train.validate()
        self.stae.validate()
        self.engine.validate()
        self.prune.validate()
        self.explore.validate()
        _check(self.engine.quality <= len(self.codec.lambdas),
               f"engine.quality must be one of the codec's qualities 1..{len(self.codec.lambdas)}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"model": ModelConfig, "quant": QuantConfig, "hw": HwConfig, "train": TrainConfig, "flow": FlowConfig,
             "fpga": FpgaConfig, "asic": AsicConfig, "baseline": BaselineConfig,
             "codec": CodecConfig, "codec_train": CodecTrainConfig, "stae": StaeConfig,
             "engine": EngineConfig, "prune": PruneConfig, "explore": ExploreConfig}


def parse_resolution(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height); anything else is an EdgecodecError naming the text."""
    m = re.match(r"^(\d+)x(\d+)$", str(text).strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise EdgecodecError(f"resolution '{text}' must look like WIDTHxHEIGHT, e.g. 1920x1080")
    return int(m.group(1)), int(m.group(2))


def from_dict(data: dict) -> Config:
    """Build and validate a Config; unknown sections or keys are errors, not silently ignored."""
    if not isinstance(data, dict):
        raise EdgecodecError("invalid config: top level must be a mapping of sections")
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise EdgecodecError(f"invalid config: unknown section(s) {sorted(unknown)}; known: {sorted(_SECTIONS)}")
    parts = {}
    for name, cls in _SECTIONS.items():
        section = data.get(name)
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise EdgecodecError(f"invalid config: section '{name}' must be a mapping")
        names = {f.name: f for f in dataclasses.fields(cls)}
        bad = set(section) - set(names)
        if bad:
            raise EdgecodecError(f"invalid config: unknown key(s) {sorted(bad)} in '{name}'; known: {sorted(names)}")
        values = {}
        for key, value in section.items():
            default = getattr(cls(), key)
            if isinstance(default, tuple) and default and isinstance(default[0], float):
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                    raise EdgecodecError(f"invalid config: {name}.{key} must be a list of numbers, got {value!r}")
                value = tuple(float(v) for v in value)
            elif isinstance(default, tuple) and default and isinstance(default[0], int):
                if isinstance(value, int) and not isinstance(value, bool):
                    value = [value]
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise EdgecodecError(f"invalid config: {name}.{key} must be a list of integers, got {value!r}")
                value = tuple(value)
            elif isinstance(default, tuple):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise EdgecodecError(f"invalid config: {name}.{key} must be a list of strings, got {value!r}")
                value = tuple(value)
            elif isinstance(default, str):
                if not isinstance(value, str):
                    raise EdgecodecError(f"invalid config: {name}.{key} must be a string, got {value!r}")
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise EdgecodecError(f"invalid config: {name}.{key} must be true or false, got {value!r}")
            elif isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
                raise EdgecodecError(f"invalid config: {name}.{key} must be an integer, got {value!r}")
            elif isinstance(default, float):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise EdgecodecError(f"invalid config: {name}.{key} must be a number, got {value!r}")
                value = float(value)
            values[key] = value
        parts[name] = cls(**values)
    return Config(**parts).validate()


def load(path: str | Path) -> Config:
    """Read a YAML config; a missing or malformed file is an EdgecodecError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise EdgecodecError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EdgecodecError(f"config file {path} is not valid YAML: {exc}") from None
    return from_dict(data)
