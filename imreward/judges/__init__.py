"""Vision-language judges as scorers.

- ``config.py``: ``JudgeConfig``, an OpenAI-compatible judge's endpoint, question, rule and limits.
- ``templates.py``: the published questions (VQAScore, UnifiedReward).
- ``answers.py``: answer -> score (a number, "Final Score", P(Yes) from top logprobs, a pairwise verdict).
- ``chat_client.py``: chat-completion requests with retries, back-off and timeouts.
- ``openai_judge.py``: ``OpenAIJudge``, the scorer over such an endpoint (``load_scorer("openai-judge:judge.json")``).
"""
