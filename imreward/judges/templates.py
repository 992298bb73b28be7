"""Published question texts of the vision-language judges. They are model input: keep them byte for
byte as published. ``{prompt}`` marks where the text prompt goes (filled by ``fill_template``).

- VQAScore (Lin et al., "Evaluating Text-to-Visual Generation with Image-to-Text Generation",
  ECCV 2024; t2v_metrics): the question and the answer whose probability is the score. The
  CLIP-FlanT5 release asks "...yes or no.", t2v_metrics' Qwen-VL models "...Yes or No.".
- UnifiedReward (Wang et al. 2025, github CodeGoat24/UnifiedReward): the pointwise "Final Score"
  question of its Qwen inference scripts (``qwen_point_score_image_generation.py``), the pairwise
  ranking question (``qwen_pair_rank_image_generation.py``) and UnifiedReward-2.0's
  alignment/coherence/style question (``point_score_ACS_image_generation.py``).
"""

from __future__ import annotations

VQASCORE_QUESTION_FLANT5 = 'Does this figure show "{prompt}"? Please answer yes or no.'
VQASCORE_QUESTION = 'Does this figure show "{prompt}"? Please answer Yes or No.'
VQASCORE_ANSWER = "Yes"

UNIFIEDREWARD_POINTWISE = (
    "You are given a text caption and a generated image based on that caption. Your task is to evaluate this "
    "image based on two key criteria:\n1. Alignment with the Caption: Assess how well this image aligns with the "
    "provided caption. Consider the accuracy of depicted objects, their relationships, and attributes as described "
    "in the caption.\n2. Overall Image Quality: Examine the visual quality of this image, including clarity, detail "
    "preservation, color accuracy, and overall aesthetic appeal.\nExtract key elements from the provided text "
    "caption, evaluate their presence in the generated image using the format: 'element (type): value' (where "
    "value=0 means not generated, and value=1 means generated), and assign a score from 1 to 5 after 'Final "
    "Score:'.\nYour task is provided as follows:\nText Caption: [{prompt}]"
)

UNIFIEDREWARD_PAIRWISE = (
    "You are given a text caption and two generated images based on that caption. Your task is to evaluate and "
    "compare these images based on two key criteria:\n1. Alignment with the Caption: Assess how well each image "
    "aligns with the provided caption. Consider the accuracy of depicted objects, their relationships, and "
    "attributes as described in the caption.\n2. Overall Image Quality: Examine the visual quality of each image, "
    "including clarity, detail preservation, color accuracy, and overall aesthetic appeal.\nCompare both images "
    "using the above criteria and select the one that better aligns with the caption while exhibiting superior "
    "visual quality.\nProvide a clear conclusion such as \"Image 1 is better.\", \"Image 2 is better.\" and \"Both "
    "images are equally good.\"\nYour task is provided as follows:\nText Caption: [{prompt}]"
)

UNIFIEDREWARD_ALIGNMENT_COHERENCE_STYLE = (
    "You are presented with a generated image and its associated text caption. "
    "Your task is to analyze the image across multiple dimensions in relation to the caption. Specifically:\n"
    "Provide overall assessments for the image along the following axes (each rated from 1 to 5):\n"
    "- Alignment Score: How well the image matches the caption in terms of content.\n"
    "- Coherence Score: How logically consistent the image is (absence of visual glitches, object distortions, etc.).\n"
    "- Style Score: How aesthetically appealing the image looks, regardless of caption accuracy.\n\n"
    "Output your evaluation using the format below:\n\n"
    "Alignment Score (1-5): X\n"
    "Coherence Score (1-5): Y\n"
    "Style Score (1-5): Z\n\n"
    "Your task is provided as follows:\n"
    "Text Caption: [{prompt}]"
)

TEMPLATES = {
    "vqascore": VQASCORE_QUESTION,
    "vqascore-flant5": VQASCORE_QUESTION_FLANT5,
    "unifiedreward": UNIFIEDREWARD_POINTWISE,
    "unifiedreward-pairwise": UNIFIEDREWARD_PAIRWISE,
    "unifiedreward-acs": UNIFIEDREWARD_ALIGNMENT_COHERENCE_STYLE,
}


def fill_template(template: str, prompt: str) -> str:
    """``template`` (a text with ``{prompt}``, or a name from ``TEMPLATES``) with the prompt in place;
    only ``{prompt}`` is replaced, so other braces in a template stay as written."""
    template = TEMPLATES.get(template, template)
    if "{prompt}" not in template:
        raise ValueError(f"a judge template needs a {{prompt}} placeholder: {template[:80]!r}")
    return template.replace("{prompt}", prompt)
