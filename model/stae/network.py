"""STAE (seed 001): feature recovery (section III-B), the video ViT classifier and the whole encoder-decoder.

Clips are float tensors (N, F, C, H, W), RGB in [0, 1). The encoder side (frame attention, spatial attention,
the budgeted selections) lives in `model.stae.attention`; here the server side completes the zero-filled
frames (`FeatureRecovery`) and classifies them (`VideoViT`), and `STAE` chains all of it for one
(frame budget alpha, spatial budget beta).
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from base.errors import EdgecodecError

from model.stae.attention import (FRAME_BUDGETS, SPATIAL_BUDGETS, FrameAttention, SpatialAttention, select_frames,
                             select_pixels)

VIT_BASE = dict(dim=768, depth=12, heads=12, patch=16, tubelet=2)   # ViT-Base on 16 x 224 x 224 clips
# Position tables start at std 0.3, not ViT's usual 0.02: trained from scratch on a few hundred clips, tiny
# tables leave every token alike and the classifier stays at chance for hundreds of steps (measured).
POS_INIT_STD = 0.3


def _half(t: torch.Tensor) -> torch.Tensor:
    """2x2 average over the last two axes (a reshape-mean: deterministic on every device, unlike AvgPool3d)."""
    *lead, h, w = t.shape
    return t.reshape(*lead, h // 2, 2, w // 2, 2).mean(dim=(-3, -1))


def _double(t: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling of the last two axes."""
    return t.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


class FeatureRecovery(nn.Module):
    """Completes the missing pixels of the received frames (seed 001, section III-B, Fig. 3).

    A 3D U-Net on the half-resolution [X'_M; M] (3x3x3 kernels, spatial stride 2 down, nearest upsampling and
    a skip concat up) gives the temporal-spatial structure; two convolutions extract two guidance maps from
    it. A 2D CNN completes every full-resolution frame from [X'_M; M]; the two guidance maps (upsampled to
    full resolution) are added to its first and last hidden layers. Received pixels are kept exactly:
    X_R = X'_M * M + pred * (1 - M).

    Parameters
    ----------
    channels : colour channels C.
    width : channels of the hidden layers (both sub-networks).
    """

    def __init__(self, channels: int = 3, width: int = 16):
        super().__init__()
        if channels < 1 or width < 1:
            raise EdgecodecError(f"FeatureRecovery: channels={channels} and width={width} must be >= 1")
        c, w = channels + 1, width
        self.channels = channels
        self.enc = nn.Conv3d(c, w, 3, padding=1)
        self.down = nn.Conv3d(w, 2 * w, 3, stride=(1, 2, 2), padding=1)   # time kept: A = 1 works
        self.mid = nn.Conv3d(2 * w, 2 * w, 3, padding=1)
        self.up = nn.Conv3d(3 * w, w, 3, padding=1)                      # after the U-Net skip concat
        self.guide_first = nn.Conv3d(w, w, 3, padding=1)
        self.guide_last = nn.Conv3d(w, w, 3, padding=1)
        self.first = nn.Conv2d(c, w, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(w, w, 3, padding=2, dilation=2), nn.ReLU(),
                                  nn.Conv2d(w, w, 3, padding=4, dilation=4), nn.ReLU())
        self.last = nn.Conv2d(w, w, 3, padding=1)
        self.out = nn.Conv2d(w, channels, 3, padding=1)

    def _guidance(self, xin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, a, c, h, w = xin.shape
        v = _half(xin).transpose(1, 2)                                   # (N, C+1, A, H/2, W/2)
        e = F.relu(self.enc(v))
        d = F.relu(self.mid(F.relu(self.down(e))))
        u = F.relu(self.up(torch.cat([e, _double(d)], dim=1)))

        def per_frame(g):                                                # (N, w, A, h, w) -> (N*A, w, H, W)
            return _double(g.transpose(1, 2).reshape(n * a, g.shape[1], h // 2, w // 2))
        return per_frame(self.guide_first(u)), per_frame(self.guide_last(u))

    def forward(self, xm: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """X_R (N, A, C, H, W) from zero-filled frames xm (N, A, C, H, W) and their mask (N, A, 1, H, W)."""
        if xm.dim() != 5 or xm.shape[2] != self.channels:
            raise EdgecodecError(f"FeatureRecovery: frames of shape {tuple(xm.shape)}, expected (N, A, "
                            f"{self.channels}, H, W)")
        n, a, c, h, w = xm.shape
        if tuple(mask.shape) != (n, a, 1, h, w):
            raise EdgecodecError(f"FeatureRecovery: mask of shape {tuple(mask.shape)}, expected {(n, a, 1, h, w)}")
        if h % 4 or w % 4:
            raise EdgecodecError(f"FeatureRecovery: frame size {h}x{w} must be a multiple of 4 (halved twice)")
        mask = mask.to(xm.dtype)
        xin = torch.cat([xm, mask], dim=2)
        g_first, g_last = self._guidance(xin)
        f = F.relu(self.first(xin.reshape(n * a, c + 1, h, w)) + g_first)
        f = F.relu(self.last(self.body(f)) + g_last)
        pred = torch.sigmoid(self.out(f)).reshape(n, a, c, h, w)
        return xm * mask + pred * (1 - mask)


class VideoViT(nn.Module):
    """Video ViT classifier whose tokens carry the original time of the frames they were cut from.

    Tubelets (kernel = stride = (tubelet, patch, patch)) of the A received frames are embedded, get a learned
    spatial position and a learned temporal position, a class token is prepended, and a pre-norm GELU
    transformer encoder + LayerNorm + linear head classify the class token. The temporal table has one entry
    per original frame (`frames`); a tubelet's temporal position is the mean of the entries of the frames it
    covers, so kept frames are embedded at their original times. When A is not a multiple of `tubelet` the
    last frame (and its time) is repeated to fill the last tubelet. Pixels are centred first, (x - 0.5) / 0.25,
    so that tokens differ by their content rather than share one large mean.

    Parameters
    ----------
    frames : frames F of a full clip (positions 0..F-1); A may be anything from 1 to F.
    image, channels : frame size (square) and colour channels.
    patch, tubelet : spatial and temporal tubelet size.
    dim, depth, heads : transformer width, layers and attention heads; classes : outputs.
    dropout : dropout of the encoder layers (0 keeps training deterministic).
    """

    def __init__(self, frames: int = 16, image: int = 32, channels: int = 3, patch: int = 8, tubelet: int = 1,
                 dim: int = 64, depth: int = 2, heads: int = 4, classes: int = 6, dropout: float = 0.0):
        super().__init__()
        checks = [(frames >= 1, f"frames={frames} must be >= 1"),
                  (patch >= 1 and image >= patch and image % patch == 0,
                   f"image={image} must be a positive multiple of patch={patch}"),
                  (1 <= tubelet <= frames, f"tubelet={tubelet} must be in 1..frames={frames}"),
                  (heads >= 1 and dim % heads == 0, f"dim={dim} must be a multiple of heads={heads}"),
                  (depth >= 1 and classes >= 1 and channels >= 1,
                   f"depth={depth}, classes={classes}, channels={channels} must be >= 1")]
        for ok, msg in checks:
            if not ok:
                raise EdgecodecError(f"VideoViT: {msg}")
        self.frames, self.image, self.channels, self.patch, self.tubelet = frames, image, channels, patch, tubelet
        self.embed = nn.Conv3d(channels, dim, (tubelet, patch, patch), stride=(tubelet, patch, patch))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.space_pos = nn.Parameter(torch.zeros((image // patch) ** 2, dim))
        self.time_pos = nn.Parameter(torch.zeros(frames, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        for p in (self.space_pos, self.time_pos):
            nn.init.trunc_normal_(p, std=POS_INIT_STD, a=-3 * POS_INIT_STD, b=3 * POS_INIT_STD)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def _check(self, x: torch.Tensor, frame_idx: torch.Tensor | None) -> torch.Tensor:
        want = f"(N, A<={self.frames}, {self.channels}, {self.image}, {self.image})"
        if x.dim() != 5 or not 1 <= x.shape[1] <= self.frames or tuple(x.shape[2:]) != (
                self.channels, self.image, self.image):
            raise EdgecodecError(f"VideoViT: clip of shape {tuple(x.shape)}, expected {want}")
        n, a = x.shape[:2]
        if frame_idx is None:
            return torch.arange(a, device=x.device).expand(n, a)
        frame_idx = torch.as_tensor(frame_idx, device=x.device)
        if tuple(frame_idx.shape) != (n, a) or frame_idx.dtype.is_floating_point or frame_idx.dtype == torch.bool:
            raise EdgecodecError(f"VideoViT: frame_idx must be an integer tensor of shape {(n, a)}, got "
                            f"{frame_idx.dtype} {tuple(frame_idx.shape)}")
        if frame_idx.numel() and (int(frame_idx.min()) < 0 or int(frame_idx.max()) >= self.frames):
            raise EdgecodecError(f"VideoViT: frame_idx values must be in 0..{self.frames - 1}, got "
                            f"{int(frame_idx.min())}..{int(frame_idx.max())}")
        return frame_idx.long()

    def forward(self, x: torch.Tensor, frame_idx: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, classes) of clips x (N, A, C, H, W) whose frames were taken at times frame_idx (N, A)
        (None: 0..A-1)."""
        frame_idx = self._check(x, frame_idx)
        n, a = x.shape[:2]
        pad = (-a) % self.tubelet
        if pad:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1, -1, -1)], dim=1)
            frame_idx = torch.cat([frame_idx, frame_idx[:, -1:].expand(-1, pad)], dim=1)
        tok = self.embed((x.transpose(1, 2) - 0.5) / 0.25).flatten(3).permute(0, 2, 3, 1)          # (N, T, S, D)
        t = tok.shape[1]
        # a one-hot product, not a gather: same result, and its gradient is deterministic on every device
        when = F.one_hot(frame_idx, self.frames).to(tok.dtype).reshape(n, t, self.tubelet, self.frames).mean(2)
        tok = tok + self.space_pos[None, None] + (when @ self.time_pos)[:, :, None]
        tok = torch.cat([self.cls.expand(n, -1, -1), tok.reshape(n, -1, tok.shape[-1])], dim=1)
        return self.head(self.norm(self.encoder(tok)[:, 0]))


def _alpha(value, frames: int) -> int:
    allowed = [a for a in FRAME_BUDGETS if a <= frames]
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
          and int(value) in allowed)
    if not ok:
        raise EdgecodecError(f"frame budget alpha={value!r} is not allowed; use one of {allowed} "
                        f"(FRAME_BUDGETS up to frames={frames})")
    return int(value)


def _beta(value) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        for b in SPATIAL_BUDGETS:
            if abs(float(value) - b) < 1e-9:
                return b
    raise EdgecodecError(f"spatial budget beta={value!r} is not allowed; use one of {list(SPATIAL_BUDGETS)}")


class STAE(nn.Module):
    """STAE: frame attention, spatial attention, feature recovery and the video ViT (seed 001, section III).

    Parameters
    ----------
    frames, channels, image, classes : clip shape (N, frames, channels, image, image) and classes.
    vit : VideoViT settings other than those four (patch, tubelet, dim, depth, heads, dropout); None: defaults.
    fr_width : hidden width of the feature-recovery CNNs.
    """

    def __init__(self, frames: int = 16, channels: int = 3, image: int = 32, classes: int = 6,
                 vit: dict | None = None, fr_width: int = 16):
        super().__init__()
        vit = dict(vit or {})
        clash = sorted(set(vit) & {"frames", "channels", "image", "classes"})
        if clash:
            raise EdgecodecError(f"STAE: vit settings {clash} are given by STAE's own arguments; remove them from vit")
        self.frames, self.channels, self.image = frames, channels, image
        self.fa = FrameAttention(frames)
        self.sa = SpatialAttention()
        self.fr = FeatureRecovery(channels, fr_width)
        try:
            self.vit = VideoViT(frames=frames, image=image, channels=channels, classes=classes, **vit)
        except TypeError as e:
            raise EdgecodecError(f"STAE: bad vit settings {sorted(vit)}: {e}") from None

    def forward(self, x: torch.Tensor, alpha: int, beta: float, use_sa: bool = True, use_fr: bool = True) -> dict:
        """Classify clips x (N, F, C, H, W) under frame budget alpha and spatial budget beta.

        Returns a dict: logits (N, classes); frame_idx (N, alpha) the kept frames in time order; mask
        (N, alpha, 1, H, W) the kept pixels (all ones when no pixel is dropped); x_kept (N, alpha, C, H, W) the
        kept frames X'; x_sent the zero-filled semantic tensor X'' (= x_kept when no pixel is dropped); x_rec
        what the ViT classifies (X_R after feature recovery, else x_sent). Pixels are dropped only when use_sa
        and beta < 1; feature recovery runs only then and when use_fr.
        """
        want = (self.frames, self.channels, self.image, self.image)
        if x.dim() != 5 or tuple(x.shape[1:]) != want:
            raise EdgecodecError(f"STAE: clip of shape {tuple(x.shape)}, expected (N, {', '.join(map(str, want))})")
        alpha, beta = _alpha(alpha, self.frames), _beta(beta)
        x_kept, idx = select_frames(x, self.fa(x), alpha)
        x_sent, mask = x_kept, torch.ones_like(x_kept[:, :, :1])
        x_rec = x_sent
        if use_sa and beta < 1.0:
            x_sent, mask = select_pixels(x_kept, self.sa(x_kept), beta)
            x_rec = self.fr(x_sent, mask) if use_fr else x_sent
        return dict(logits=self.vit(x_rec, idx), frame_idx=idx, mask=mask, x_kept=x_kept, x_sent=x_sent,
                    x_rec=x_rec)
