"""ReFL: fine-tune diffusion and flow-matching generators (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1)
directly on a differentiable reward (ReFL, DRaFT-K, AlignProp), with reward-hacking guards.

    from imreward.refl import ReFLConfig, ReFLTrainer, load_pipeline, load_reward, load_prompts

    trainer = ReFLTrainer(load_pipeline("runwayml/stable-diffusion-v1-5"), load_reward(["ImageReward-v1.0"]),
                          ReFLConfig(output_dir="refl-out"), load_prompts("refl_data.json"))
    trainer.train()
    trainer.export()

Needs the ``refl`` extra (diffusers, accelerate, peft); imported lazily by the trainer.
"""

from imreward._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "imreward.refl.components": ["build_random_pipeline", "cast_pipeline", "load_pipeline"],
    "imreward.refl.config": ["ReFLConfig"],
    "imreward.refl.families": ["FAMILIES", "family_of"],
    "imreward.refl.families.flux": ["build_random_flux_pipeline"],
    "imreward.refl.families.sd3": ["build_random_sd3_pipeline"],
    "imreward.refl.guards": ["MonitorGuard"],
    "imreward.refl.data": ["CaptionedImages", "load_prompts"],
    "imreward.refl.rewards": ["FrozenReward", "RegionBrightness", "WeightedReward", "load_reward"],
    "imreward.refl.trainer": ["ReFLTrainer"],
})
