"""Reward serving: an HTTP server with dynamic batching (``imreward serve``). Batch scoring of
image sets (``imreward score-dataset``) lives in ``imreward.batch``.

Heavy dependencies (FastAPI, uvicorn) are imported by the modules that need them, so
``import imreward.serve`` stays cheap.
"""
