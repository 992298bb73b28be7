"""Batch scoring of sharded image sets (``imreward score-dataset``, ``imreward.score_shards``).

- ``decode``: rows -> decoded, preprocessed batches (CPU side, shared by both engines);
- ``scoring``: decoded batches -> one score column per model (``BatchScorer``);
- ``outputs``: per-shard result files, the run manifest, resuming and merging;
- ``progress``: rows/s, failures by reason, shards done/total, the JSON summary;
- ``job``: ``score_shards``, the one code path; ``local_engine`` and ``ray_engine``: the engines
  (``ray_engine.ImRewardScorer`` is the Ray Data building block, also ``imreward.ray.ImRewardScorer``);
- ``cli``: the ``score-dataset`` command.

The shard readers themselves are ``imreward.data.shards`` and its siblings.
"""
