"""A MAC rebuilt from its checkpoint, turning uint8 batches into per-attribute probabilities (and reliabilities)."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from facemac.annotation.reliability import dropout_modules, reliability_from_samples, set_mc_dropout
from facemac.data.dataset import normalize_on_device
from facemac.data.preprocess import Preprocessor
from facemac.errors import CheckpointError, ConfigError
from facemac.checkpoint import checkpoint_sets, checkpoint_validation
from facemac.hardware import cpu_native_bf16
from facemac.models.mac import mac_from_checkpoint
from facemac.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_choice(spec, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None, why) for ``annotate.precision`` (fp32: no autocast; the Python API also takes off). ``auto``: bf16 on a GPU that supports it (else fp16), bf16
    on a CPU that computes it natively (facemac.hardware.cpu_native_bf16), fp32 on other CPUs (emulated bf16 only
    adds conversions)."""
    if spec in (None, "off", "fp32", False):
        return None, "annotate.precision=fp32"
    if spec == "auto":
        if device.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            return (torch.bfloat16, "auto: CUDA") if bf16 else (torch.float16, "auto: CUDA without bf16")
        native, why = cpu_native_bf16()
        return (torch.bfloat16 if native else None), f"auto: {why}"
    if spec not in AMP_DTYPES:
        raise ConfigError(f"annotate.precision={spec!r}; choose auto, fp32, bf16 or fp16")
    return AMP_DTYPES[spec], f"annotate.precision={spec}"


# annotate.compile=auto compiles from this many listed images on: compilation costs 3 s (warm inductor cache) to
# 25 s (cold) and the compiled demo model runs ~1.5x faster on a 2-core CPU, so it pays after ~10k-90k images.
COMPILE_AUTO_MIN_IMAGES = 50_000


def resolve_compile(spec, num_images: int) -> bool:
    """``annotate.compile``: true | false | auto (on for runs of at least COMPILE_AUTO_MIN_IMAGES images)."""
    if isinstance(spec, bool):
        return spec
    if str(spec).lower() == "auto":
        return num_images >= COMPILE_AUTO_MIN_IMAGES
    raise ConfigError(f"annotate.compile={spec!r}: use true, false or auto")


@dataclass
class Annotator:
    """Model + the preprocessing it was trained with; ``predict`` runs under inference_mode."""

    model: torch.nn.Module
    attributes: list[str]
    thresholds: list[float]
    preprocessor: Preprocessor
    mean: list[float]
    std: list[float]
    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    mc_samples: int = 0
    eager_model: torch.nn.Module | None = None  # the uncompiled module when ``model`` is torch.compile'd
    compiled_batch: int = 0  # batch size the compiled graph was built for; smaller batches are padded up to it
    counting_thresholds: list[float] | None = None  # chosen for faithful counts (facemac.annotation_table); None: older ckpt
    counting_rule: str | None = None
    validation: tuple | None = None  # (identity, labels, probs) from checkpoint_validation; None: an older ckpt
    val_quality: dict[str, dict[str, float]] | None = None  # checkpoint metrics: {attr: {balanced_accuracy, ...}}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device, amp: str = "auto",
                        channels_last: str | bool = "auto", mc_samples: int = 0, compile: bool = False) -> Annotator:
        """Rebuild the MAC (no weights downloaded: the state comes from the file) and its Preprocessor."""
        ckpt = load_checkpoint(path)
        attributes = list(ckpt["attributes"])
        thresholds, counting, counting_rule = checkpoint_sets(ckpt, path)
        model = mac_from_checkpoint(ckpt, path)
        data_cfg = ckpt["data_cfg"]
        try:
            pre = Preprocessor.from_data_cfg(data_cfg)
            mean, std = [float(v) for v in data_cfg["mean"]], [float(v) for v in data_cfg["std"]]
        except KeyError as e:
            raise CheckpointError(f"checkpoint {path}: data_cfg lacks {e}") from e
        # auto = on: channels-last feeds oneDNN/cuDNN convolutions directly (CPU, 1 thread, bf16: resnet18 @112 93 →
        # 131 img/s, demo model 2.5k → 3.4-4.0k); a ViT is indifferent (only its patch embedding is a convolution)
        cl = True if channels_last == "auto" else bool(channels_last)
        model.eval().to(device)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        if mc_samples == 1 or mc_samples < 0:
            raise ConfigError(f"annotate.mc_samples={mc_samples}: use 0 (off) or K >= 2 dropout passes")
        if mc_samples and not dropout_modules(model):
            log.warning("annotate.mc_samples=%d but the model has no dropout with p>0 (model.drop_rate=0?): "
                        "every reliability will be 1", mc_samples)
        eager = None
        if compile:  # annotate.compile: MC-dropout toggles train mode on submodules, so only the plain pass compiles
            if mc_samples:
                log.warning("annotate.compile is ignored with annotate.mc_samples > 0")
            else:  # static shapes: a last, shorter batch is padded instead of costing a second (dynamic) compile
                eager, model = model, torch.compile(model, dynamic=False)
        amp_dtype, why = amp_choice(amp, device)
        log.info("annotation precision: %s (%s); channels-last %s", "fp32" if amp_dtype is None else
                 f"{str(amp_dtype).removeprefix('torch.')} autocast", why, "on" if cl else "off")
        return cls(model=model, attributes=attributes, thresholds=thresholds, preprocessor=pre, mean=mean, std=std,
                   device=device, amp_dtype=amp_dtype, channels_last=cl, mc_samples=int(mc_samples),
                   eager_model=eager, counting_thresholds=counting, counting_rule=counting_rule,
                   validation=checkpoint_validation(ckpt, path), val_quality=_val_quality(ckpt))

    @property
    def label_thresholds(self) -> list[float]:
        """The set the annotation's labels use: the counting set, or ``thresholds`` for an older checkpoint."""
        return self.counting_thresholds if self.counting_thresholds is not None else self.thresholds

    @property
    def plain_model(self) -> torch.nn.Module:
        """The model without torch.compile (what a naive baseline or an eager fallback runs)."""
        return self.eager_model if self.eager_model is not None else self.model

    def warm_up(self, batch_size: int) -> None:
        """One forward pass on a zero batch: compiles a torch.compile'd model (or falls back to eager) once, here,
        before inference threads share it."""
        s = self.preprocessor.size
        self.predict(torch.zeros(batch_size, 3, s, s, dtype=torch.uint8))

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 [N,3,H,W] → (probabilities [N,A], reliability [N,A] or None), float32 on the CPU."""
        probs, rels = self.predict_on_device(images)
        return probs.cpu(), None if rels is None else rels.cpu()

    @torch.inference_mode()
    def predict_on_device(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``predict`` without the copy back: on a GPU the work is queued and nothing waits for it yet, so the next
        batch can be prepared meanwhile."""
        x = normalize_on_device(images, self.mean, self.std, self.device, channels_last=self.channels_last)
        model = self.model
        with self._autocast():
            if self.eager_model is not None:
                return self._predict_compiled(x), None
            if self.mc_samples <= 0:
                return torch.sigmoid(model(x).float()), None
            if _head_only_dropout(model):  # features once, then K cheap stochastic heads: same distribution
                feats = model.backbone(x)
                probs = torch.sigmoid(model.head(feats).float())
                model.dropout.train(True)
                try:
                    samples = torch.stack([torch.sigmoid(model.head(model.dropout(feats)).float())
                                           for _ in range(self.mc_samples)])
                finally:
                    model.dropout.train(False)
            else:
                probs = torch.sigmoid(model(x).float())
                set_mc_dropout(model, True)
                try:
                    samples = torch.stack([torch.sigmoid(model(x).float()) for _ in range(self.mc_samples)])
                finally:
                    set_mc_dropout(model, False)
        return probs, reliability_from_samples(samples)

    def _predict_compiled(self, x: torch.Tensor) -> torch.Tensor:
        """Compiled forward on a fixed batch size (shorter batches are zero-padded, the padding rows dropped).

        The first call compiles; when that fails (no C++ compiler for inductor on a CPU, an unsupported op) the
        annotator warns once and goes on with the eager model, so a long run never dies on an optional speed-up."""
        n = x.shape[0]
        first = self.compiled_batch == 0
        self.compiled_batch = max(self.compiled_batch, n)  # a larger batch compiles once more, then is the size
        if n < self.compiled_batch:
            x = torch.cat([x, x.new_zeros((self.compiled_batch - n, *x.shape[1:]))])
            if self.channels_last:  # cat gives NCHW strides: a stride change would cost a recompilation
                x = x.contiguous(memory_format=torch.channels_last)
        if not first:
            return torch.sigmoid(self.model(x)[:n].float())
        t0 = time.perf_counter()
        try:
            logits = self.model(x)
        except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, the eager model is the reference
            root = e
            while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
                root = inner  # dynamo wraps the compiler's own error: report that one
            log.warning("annotate.compile: torch.compile failed (%s: %s); annotating with the eager model",
                        type(root).__name__, (str(root).strip().splitlines() or [""])[0])
            self.model, self.eager_model = self.eager_model, None
            return torch.sigmoid(self.model(x)[:n].float())
        log.info("annotate.compile: compiled for batches of %d in %.1f s", self.compiled_batch, time.perf_counter() - t0)
        return torch.sigmoid(logits[:n].float())


def _head_only_dropout(model: torch.nn.Module) -> bool:
    """True when the MAC's head dropout is the only stochastic layer (timm backbones built with num_classes=0)."""
    return (hasattr(model, "backbone") and hasattr(model, "head") and hasattr(model, "dropout")
            and not dropout_modules(model.backbone))


def _val_quality(ckpt: dict) -> dict[str, dict[str, float]] | None:
    """Per attribute the validation metrics the checkpoint was selected on (balanced accuracy, accuracy, at its
    reporting thresholds), for the manifest: the analysis puts them beside every conclusion (issue #20)."""
    per = ((ckpt.get("metrics") or {}).get("val") or {}).get("per_attribute") or {}
    out = {a: {k: float(v[k]) for k in ("balanced_accuracy", "accuracy") if isinstance(v, dict) and k in v}
           for a, v in per.items()}
    return out or None
