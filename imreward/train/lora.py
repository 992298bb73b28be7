"""LoRA (Hu et al., 2021) on the BLIP backbone with peft, the parameter-efficient alternative to
freezing layers (the ImageReward paper's open question, sec. 4.1).

Low-rank adapters go on the backbone's attention and MLP projections (``DEFAULT_LORA_TARGETS``,
module-name suffixes as peft matches them); every backbone weight is frozen and the adapters and
the reward head train. A run saves the merged weights (``best/``, ``final/``: plain ``save_pretrained``
folders that ``imreward.load`` reads like any other) and, beside them, the adapter in peft's layout
(``best/adapter/``: ``adapter_config.json`` + ``adapter_model.safetensors``, which also holds the
trained head), read back onto its base model by ``load_adapter``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from imreward.models.image_reward import ImageReward
from imreward.train.freezing import FreezeSummary

# ViT blocks: attn.qkv, attn.proj, mlp.fc1, mlp.fc2. BERT layers: (cross)attention self.query/key/value
# and output.dense, intermediate.dense and output.dense.
DEFAULT_LORA_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "self.query", "self.key", "self.value",
                        "output.dense", "intermediate.dense")
ADAPTER_FOLDER = "adapter"
HEAD_PREFIX = "head."  # the reward head's tensors in adapter_model.safetensors



def parse_lora_targets(text: str | None) -> tuple[str, ...] | None:
    """``--lora-targets``: comma-separated module-name suffixes; None (the default targets) when not given."""
    return tuple(target.strip() for target in text.split(",") if target.strip()) if text else None

def add_lora(model: ImageReward, rank: int, targets: tuple[str, ...] = DEFAULT_LORA_TARGETS,
             alpha: float | None = None, base: str | os.PathLike | None = None) -> FreezeSummary:
    """Inject LoRA adapters of ``rank`` into ``model.blip`` in place; only adapters and head train.

    ``alpha`` defaults to ``rank`` (update scale 1); ``base`` is recorded as the adapter's base model.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=list(targets), lora_dropout=0.0,
                        base_model_name_or_path=None if base is None else str(base))
    try:
        model.blip = inject_adapter_in_model(config, model.blip)
    except ValueError as error:
        raise ValueError(f"--lora-targets {','.join(targets)}: {error}") from error
    model.requires_grad_(False)
    for name, parameter in model.named_parameters():
        if "lora_" in name or name.startswith("mlp."):
            parameter.requires_grad_(True)
    parameters = list(model.parameters())
    return FreezeSummary(sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters),
                         0, 0, False, lora_rank=rank)


def has_lora(model: ImageReward) -> bool:
    """Whether ``add_lora`` put adapters on ``model`` (checked without importing peft)."""
    return hasattr(model.blip, "peft_config")


def merged_copy(model: ImageReward) -> ImageReward:
    """A copy of ``model`` with every adapter merged into its base layer (plain modules again)."""
    from peft.tuners.lora import LoraLayer

    merged = copy.deepcopy(model)
    for name, module in list(merged.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(merged.get_submodule(parent_name), child, module.get_base_layer())
    if hasattr(merged.blip, "peft_config"):
        del merged.blip.peft_config
    return merged


def load_merged_weights(model: ImageReward, state_dict: dict[str, torch.Tensor]) -> None:
    """Load merged (plain) weights into ``model``, which may carry adapters: then the base layers take
    the merged weights and the adapters are zeroed, so the model computes exactly the merged one."""
    if not has_lora(model):
        model.load_state_dict(state_dict)
        return
    own = model.state_dict()
    mapped = {}
    for key, value in own.items():
        if ".lora_B." in key:
            mapped[key] = torch.zeros_like(value)
        elif ".lora_" in key:
            mapped[key] = value
        else:
            mapped[key] = state_dict[key.replace(".base_layer.", ".")].to(value.device)
    model.load_state_dict(mapped)


def save_adapter(model: ImageReward, folder: str | os.PathLike) -> Path:
    """The adapters (peft layout) and the reward head into ``folder``."""
    from peft import get_peft_model_state_dict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.blip.peft_config["default"].save_pretrained(str(folder))
    tensors = {key: value.detach().contiguous().cpu() for key, value in get_peft_model_state_dict(model.blip).items()}
    tensors.update({HEAD_PREFIX + key: value.detach().contiguous().cpu() for key, value in model.mlp.state_dict().items()})
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def load_adapter(folder: str | os.PathLike, base: str | os.PathLike | None = None, **load_options) -> ImageReward:
    """A base reward model (``base``, else the adapter's ``base_model_name_or_path``, read with
    ``imreward.load``) with the saved adapters (unmerged) and head of ``folder``."""
    import imreward
    from peft import LoraConfig, set_peft_model_state_dict

    folder = Path(folder)
    config = LoraConfig.from_pretrained(str(folder))
    base = base or config.base_model_name_or_path
    if base is None:
        raise ValueError(f"{folder}: the adapter names no base model; pass base=")
    model = imreward.load(base, **load_options)
    add_lora(model, config.r, tuple(config.target_modules), config.lora_alpha, base)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    device = next(model.parameters()).device
    result = set_peft_model_state_dict(model.blip, {k: v.to(device) for k, v in tensors.items()
                                                    if not k.startswith(HEAD_PREFIX)})
    if unexpected := getattr(result, "unexpected_keys", []):
        raise ValueError(f"{folder}: adapter tensors that fit no layer: {unexpected[:3]}")
    model.mlp.load_state_dict({k[len(HEAD_PREFIX):]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)})
    return model.eval()


def configure_trainable(model: ImageReward, config) -> FreezeSummary:
    """LoRA when ``config.lora_rank`` is set, else the paper's layer freezing (``freeze``)."""
    from imreward.train.freezing import freeze

    if config.lora_rank:
        init = config.init
        base = None if init is None else str(Path(init).resolve()) if Path(init).exists() else str(init)
        return add_lora(model, config.lora_rank, tuple(config.lora_targets or DEFAULT_LORA_TARGETS),
                        config.lora_alpha, base)
    return freeze(model, config.effective_freeze_ratio)
