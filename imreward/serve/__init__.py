"""Reward serving: an HTTP server with dynamic batching (``imreward serve``) and resumable,
sharded batch scoring of image sets (``imreward score-dataset``).

Heavy dependencies (FastAPI, uvicorn, pyarrow) are imported by the modules that need them, so
``import imreward.serve`` stays cheap.
"""
