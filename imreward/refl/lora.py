"""LoRA adapters on the UNet (peft): adding them, checkpointing only them, exporting them.

Checkpoints of a LoRA run hold the adapter weights alone (``unet_lora.safetensors``) rather
than the full UNet accelerate would otherwise save, through accelerate's state hooks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")
CHECKPOINT_FILE = "unet_lora.safetensors"


def add_lora(unet, rank: int, alpha: float | None = None) -> list[torch.nn.Parameter]:
    """Freeze the UNet and attach LoRA adapters to its attention projections.

    Returns:
        The adapter parameters (the only trainable ones).
    """
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                target_modules=list(LORA_TARGET_MODULES)))
    return [parameter for parameter in unet.parameters() if parameter.requires_grad]


def register_checkpoint_hooks(accelerator) -> None:
    """Make ``accelerator.save_state``/``load_state`` store only the UNet's LoRA weights."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    def save_adapters(models, weights, output_dir) -> None:
        if accelerator.is_main_process:
            for model in models:
                unet = accelerator.unwrap_model(model)
                save_file(get_peft_model_state_dict(unet), str(Path(output_dir) / CHECKPOINT_FILE))
        weights.clear()

    def load_adapters(models, input_dir) -> None:
        while models:
            unet = accelerator.unwrap_model(models.pop())
            result = set_peft_model_state_dict(unet, load_file(str(Path(input_dir) / CHECKPOINT_FILE)))
            if getattr(result, "unexpected_keys", None):
                raise ValueError(f"{input_dir}: unexpected LoRA keys {result.unexpected_keys[:5]}")

    accelerator.register_save_state_pre_hook(save_adapters)
    accelerator.register_load_state_pre_hook(load_adapters)


def save_lora_weights(pipeline, unet, folder: str | Path) -> None:
    """Write the UNet adapters in diffusers' LoRA format (``pipeline.load_lora_weights(folder)`` reads it)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    type(pipeline).save_lora_weights(str(folder), unet_lora_layers=layers)
