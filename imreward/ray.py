"""Ray Data building blocks: ``ImRewardScorer``, a callable class for ``Dataset.map_batches`` that
loads the scorers once per actor and adds score columns to each batch::

    import ray
    from imreward.ray import ImRewardScorer

    ds = ray.data.read_parquet("images/")                # "image" (bytes) and "prompt" columns
    ds = ds.map_batches(ImRewardScorer, fn_constructor_kwargs={"models": ["ImageReward-v1.0"]},
                        concurrency=4, num_gpus=1, batch_size=128)

Needs the ``ray`` extra (``pip install imreward[ray]``).
"""

from imreward.batch.ray_engine import ImRewardScorer, RayOptions

__all__ = ["ImRewardScorer", "RayOptions"]
