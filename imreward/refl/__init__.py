"""ReFL: fine-tune Stable Diffusion (1.x/2.x, SDXL) directly on a differentiable reward.

    from imreward.refl import ReFLConfig, ReFLTrainer, load_pipeline, load_reward, load_prompts

    trainer = ReFLTrainer(load_pipeline("runwayml/stable-diffusion-v1-5"), load_reward(["ImageReward-v1.0"]),
                          ReFLConfig(output_dir="refl-out"), load_prompts("refl_data.json"))
    trainer.train()
    trainer.export()

Needs the ``refl`` extra (diffusers, accelerate, peft); imported lazily by the trainer.
"""

from imreward.refl.components import build_random_pipeline, load_pipeline
from imreward.refl.config import ReFLConfig
from imreward.refl.data import CaptionedImages, load_prompts
from imreward.refl.rewards import RegionBrightness, WeightedReward, load_reward
from imreward.refl.trainer import ReFLTrainer

__all__ = ["CaptionedImages", "ReFLConfig", "ReFLTrainer", "RegionBrightness", "WeightedReward",
           "build_random_pipeline", "load_pipeline", "load_prompts", "load_reward"]
