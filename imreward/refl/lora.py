"""LoRA adapters on the denoiser (peft): adding them, checkpointing only them, exporting them.

Adapters go on the attention projections the generator family names (the UNet's to_q/k/v/out;
for SD3/FLUX transformers also the text stream's add_*_proj/to_add_out). Checkpoints of a LoRA
run hold the adapter weights alone (``unet_lora.safetensors`` / ``transformer_lora.safetensors``)
rather than the full denoiser accelerate would otherwise save, through accelerate's state hooks.

An export (``final/``, ``best/``) holds the adapters twice, each loading at the trained scale
alpha/rank: ``pytorch_lora_weights.safetensors`` in diffusers' format with the adapter config
(rank, alpha, targets) in its metadata, for ``pipeline.load_lora_weights(folder)``; and ``peft/``
(``adapter_config.json`` + ``adapter_model.safetensors``), peft's own layout, for
``peft.PeftModel.from_pretrained(pipeline.unet or pipeline.transformer, folder / "peft")``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")
ADAPTER = "default"  # the adapter name peft gives the one adapter ``add_lora`` attaches
PEFT_FOLDER = "peft"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # peft's key prefix for a model wrapped in ``PeftModel``


def checkpoint_file(model_attribute: str = "unet") -> str:
    return f"{model_attribute}_lora.safetensors"


def add_lora(model, rank: int, alpha: float | None = None,
             targets: tuple[str, ...] = LORA_TARGET_MODULES) -> list[torch.nn.Parameter]:
    """Freeze the denoiser and attach LoRA adapters to the ``targets`` projections.

    Returns:
        The adapter parameters (the only trainable ones).
    """
    from peft import LoraConfig

    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights="gaussian",
                                 target_modules=list(targets)))
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def register_checkpoint_hooks(accelerator, file_name: str = checkpoint_file()) -> None:
    """Make ``accelerator.save_state``/``load_state`` store only the denoiser's LoRA weights."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    def save_adapters(models, weights, output_dir) -> None:
        if accelerator.is_main_process:
            for model in models:
                save_file(get_peft_model_state_dict(accelerator.unwrap_model(model)),
                          str(Path(output_dir) / file_name))
        weights.clear()

    def load_adapters(models, input_dir) -> None:
        while models:
            model = accelerator.unwrap_model(models.pop())
            result = set_peft_model_state_dict(model, load_file(str(Path(input_dir) / file_name)))
            if getattr(result, "unexpected_keys", None):
                raise ValueError(f"{input_dir}: unexpected LoRA keys {result.unexpected_keys[:5]}")

    accelerator.register_save_state_pre_hook(save_adapters)
    accelerator.register_load_state_pre_hook(load_adapters)


def save_lora_weights(pipeline, family, model, folder: str | Path) -> None:
    """Write the adapters of ``model`` to ``folder`` for diffusers and for peft (see the module header)."""
    from peft.utils import get_peft_model_state_dict

    config = model.peft_config[ADAPTER]
    metadata = {f"{family.model_attribute}_lora_adapter_metadata": config.to_dict()}
    type(pipeline).save_lora_weights(str(folder), **family.lora_layers(model), **metadata)
    peft_folder = Path(folder) / PEFT_FOLDER
    config.save_pretrained(str(peft_folder))
    weights = get_peft_model_state_dict(model, adapter_name=ADAPTER)
    save_file({PEFT_PREFIX + name: value.contiguous() for name, value in weights.items()},
              str(peft_folder / PEFT_WEIGHTS))
