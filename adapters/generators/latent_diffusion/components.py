"""Stable Diffusion's components (UNet, VAE, CLIP text encoder and tokenizer, noise schedule):
loading them from a diffusers folder, building random ones from configs, and LoRA on the UNet.

Depends only on torch, diffusers, transformers and peft (no other medaug module), so that
``benchmarks/latent_diffusion.py`` runs wherever those are installed. Problems are raised as
``LayoutError`` (a ``ValueError``) with one line naming the file; the adapters turn them into
``ConfigError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

SD_FILES: tuple[str, ...] = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
)
"""What a diffusers Stable Diffusion folder holds (beside the weights of unet, vae and text_encoder, and the
tokenizer's tokenizer.json or vocab.json)."""

WEIGHT_NAMES: tuple[str, ...] = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
    "diffusion_pytorch_model.fp16.safetensors",
    "model.fp16.safetensors",
)

LORA_TARGETS: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0")
"""UNet attention projections LoRA adapts (as diffusers' ``train_text_to_image_lora.py``)."""

Size = Literal["tiny", "sd15"]

# Tiny components: a few thousand parameters each, the smallest that still has the SD layout
# (cross-attention in the UNet, an 2x-downsampling KL autoencoder, a CLIP text transformer).
_TINY_UNET = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
)
_TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
    sample_size=32,
)
_TINY_TEXT = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                  max_position_embeddings=77, projection_dim=16)
# Stable Diffusion 1.5's real sizes (runwayml/stable-diffusion-v1-5 configs): random weights,
# for speed figures without the weights.
_SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8,
)
_SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
    scaling_factor=0.18215,
)
_SD15_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                  max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
_SD_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
)
NATIVE_RESOLUTION: dict[str, int] = {"tiny": 32, "sd15": 512}


class LayoutError(ValueError):
    """A weights folder or LoRA checkpoint that cannot be used: one line naming the file."""


@dataclass
class Components:
    """What LoRA training and the pipelines need.

    Attributes:
        unet, vae, text_encoder, tokenizer: Stable Diffusion's parts.
        schedule: the training noise schedule's config (``DDPMScheduler.from_config``).
        source: the folder or hub id they came from (``random:<size>`` for built ones).
    """

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    schedule: dict[str, Any]
    source: str

    @property
    def vae_scale(self) -> int:
        """How many pixels one latent covers per side."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def layout_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a diffusers Stable Diffusion folder (one line), or None when it is."""
    if not folder.is_dir():
        return (
            f"{folder}: no Stable Diffusion weights folder there; put a diffusers Stable Diffusion folder "
            "(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) there, e.g. "
            "`huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir PATH`"
        )
    for name in SD_FILES:
        if not (folder / name).is_file():
            return f"{folder / name}: missing; {folder} is not a diffusers Stable Diffusion folder"
    if not any((folder / "tokenizer" / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        return f"{folder / 'tokenizer'}: missing tokenizer.json (or vocab.json and merges.txt)"
    for part in ("unet", "vae", "text_encoder"):
        if not any((folder / part / weights).is_file() for weights in WEIGHT_NAMES):
            return f"{folder / part}: no weights file ({WEIGHT_NAMES[0] if part != 'text_encoder' else 'model.safetensors'})"
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as exc:
        return f"{folder / 'model_index.json'}: not readable JSON ({exc})"
    if not isinstance(index, dict) or "unet" not in index or "vae" not in index:
        return f"{folder / 'model_index.json'}: not a Stable Diffusion pipeline index (no unet/vae entries)"
    return None


def load_components(source: str, *, local: bool, dtype: torch.dtype = torch.float32) -> Components:
    """Stable Diffusion's parts from a diffusers folder (``local``) or a hub id (downloads).

    Raises:
        LayoutError: the folder is not a diffusers Stable Diffusion layout, or a part cannot load.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if local:
        problem = layout_problem(Path(source))
        if problem:
            raise LayoutError(problem)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    options: dict[str, Any] = {"local_files_only": local}
    try:
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **options)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=dtype, **options)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **options)
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **options)
        schedule = dict(DDPMScheduler.from_pretrained(source, subfolder="scheduler", **options).config)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        text = str(exc).strip().splitlines()
        raise LayoutError(f"{source}: cannot load Stable Diffusion ({text[0] if text else type(exc).__name__})") from None
    return Components(unet, vae, text_encoder, tokenizer, _plain(schedule), source)


def write_tokenizer(folder: Path) -> None:
    """A CLIP BPE tokenizer over single characters (vocab.json, merges.txt) in ``folder``.

    Prompts of lowercase words, digits and punctuation tokenise without unknowns; made for tests
    and speed figures, where no real vocabulary file may be read.
    """
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list("abcdefghijklmnopqrstuvwxyz0123456789,.-'<>()_:")
    vocab = ["<|startoftext|>", "<|endoftext|>", "!"] + symbols + [s + "</w>" for s in symbols]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")


def build_components(size: Size, folder: Path, *, seed: int) -> Components:
    """Random Stable Diffusion parts of ``size`` (``tiny`` or SD 1.5's real ``sd15`` sizes).

    The tokenizer's files are written under ``folder`` (see ``write_tokenizer``).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer(str(folder / "tokenizer" / "vocab.json"), str(folder / "tokenizer" / "merges.txt"),
                              model_max_length=77)
    torch.manual_seed(seed)
    unet_config, vae_config, text_config = (
        (_TINY_UNET, _TINY_VAE, _TINY_TEXT) if size == "tiny" else (_SD15_UNET, _SD15_VAE, _SD15_TEXT)
    )
    text = CLIPTextConfig(
        vocab_size=max(len(tokenizer), 1000 if size == "tiny" else 49408), bos_token_id=0, eos_token_id=1,
        pad_token_id=1, **text_config,
    )
    return Components(
        unet=UNet2DConditionModel(**unet_config),
        vae=AutoencoderKL(**vae_config),
        text_encoder=CLIPTextModel(text),
        tokenizer=tokenizer,
        schedule=dict(_SD_SCHEDULE),
        source=f"random:{size}",
    )


def save_components(components: Components, folder: Path) -> None:
    """Write ``components`` as a diffusers Stable Diffusion folder (``model_index.json`` and parts)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipeline = StableDiffusionPipeline(
        vae=components.vae, text_encoder=components.text_encoder, tokenizer=components.tokenizer,
        unet=components.unet, scheduler=DDIMScheduler.from_config(components.schedule), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(folder), safe_serialization=True)


def add_lora(unet: Any, rank: int, alpha: float | None = None) -> None:
    """Freeze ``unet`` and add a LoRA adapter of ``rank`` to its attention projections (peft)."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS))
    )


def lora_state(unet: Any) -> dict[str, torch.Tensor]:
    """The LoRA weights of ``unet`` (peft's names), detached on the CPU."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu").contiguous() for k, v in get_peft_model_state_dict(unet).items()}


def load_lora(unet: Any, state: dict[str, torch.Tensor], where: str) -> None:
    """Put LoRA weights ``state`` (from ``lora_state``) into ``unet``'s adapter.

    Raises:
        LayoutError: the weights do not fit this UNet (a LoRA of another base model or rank).
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    ours = get_peft_model_state_dict(unet)
    for name, tensor in state.items():
        if name not in ours or ours[name].shape != tensor.shape:
            found = "not in this model" if name not in ours else f"shape {tuple(tensor.shape)} vs {tuple(ours[name].shape)}"
            raise LayoutError(f"{where}: LoRA weights of another base model or rank ({name}: {found})")
    missing = sorted(set(ours) - set(state))
    if missing:
        raise LayoutError(f"{where}: LoRA weights of another base model or rank ({missing[0]} missing)")
    set_peft_model_state_dict(unet, state)


GRADE_TOKENS: tuple[str, ...] = tuple(f"<dr-grade-{grade}>" for grade in range(5))
"""The learned tokens of the grades (textual inversion, as DA-Fusion), when they are used."""


class TokenEmbedding(torch.nn.Module):
    """The text encoder's token embedding with trainable rows for the grade tokens.

    Ids of the added grade tokens look up ``learned`` (a small parameter: what textual inversion
    trains); every other id the frozen original table. Works with any CLIP text model through
    ``set_input_embeddings``, whatever its internals.
    """

    def __init__(self, original: torch.nn.Embedding, first_id: int, learned: torch.Tensor) -> None:
        super().__init__()
        self.original = original
        self.first_id = first_id
        self.learned = torch.nn.Parameter(learned.detach().clone().float())

    @property
    def weight(self) -> torch.Tensor:
        """The original table (what code asking for ``embedding.weight`` expects)."""
        return self.original.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        offset = ids - self.first_id
        added = (offset >= 0) & (offset < len(self.learned))
        plain = self.original(torch.where(added, torch.zeros_like(ids), ids))
        learned = self.learned[offset.clamp(0, len(self.learned) - 1)].to(plain.dtype)
        return torch.where(added[..., None], learned, plain)


def add_grade_tokens(components: Components, words: tuple[str, ...], learned: torch.Tensor | None = None) -> TokenEmbedding:
    """Add the grade tokens to the tokenizer and their embeddings to the text encoder.

    Args:
        words: the grade words; a new token starts as the mean embedding of its word's tokens
            (textual inversion's initializer token).
        learned: embeddings to use instead (from a checkpoint), ``5 x D``.
    """
    tokenizer, encoder = components.tokenizer, components.text_encoder
    tokenizer.add_tokens(list(GRADE_TOKENS))
    ids = tokenizer.convert_tokens_to_ids(list(GRADE_TOKENS))
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise LayoutError(f"{components.source}: the tokenizer does not give the grade tokens consecutive ids ({ids})")
    original = encoder.get_input_embeddings()
    if ids[-1] >= original.num_embeddings:
        encoder.resize_token_embeddings(len(tokenizer))
        original = encoder.get_input_embeddings()
    if learned is None:
        with torch.no_grad():
            rows = []
            for word in words:
                word_ids = tokenizer(word, add_special_tokens=False).input_ids
                rows.append(original.weight[torch.tensor(word_ids, device=original.weight.device)].float().mean(0))
            learned = torch.stack(rows)
    embedding = TokenEmbedding(original, ids[0], learned.to(original.weight.device))
    encoder.set_input_embeddings(embedding)
    return embedding


def encode_prompts(components: Components, prompts: list[str], device: torch.device) -> torch.Tensor:
    """CLIP text embeddings of ``prompts`` (padded to the tokenizer's length), as the UNet takes them."""
    tokens = components.tokenizer(
        prompts, padding="max_length", max_length=components.tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)
    return components.text_encoder(tokens)[0]


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}
