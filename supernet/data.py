"""Corpora, tokenizers and batches for language-model training.

A dataset spec (`--dataset`) is one of
    PATH.txt         one UTF-8 text file: first 90% train, last 10% valid (Tiny Shakespeare
                     convention); no test split
    DIR              a folder with train/valid[/test] files (e.g. WikiText's train.txt, valid.txt,
                     test.txt or wiki.train.tokens ...), used as given
    hf:NAME[:CONFIG] a Hugging Face dataset through `datasets` (e.g. hf:wikitext:wikitext-2-v1):
                     its train, validation and (if any) test splits
    builtin          an offline corpus from what is installed: the docstrings of the Python
                     standard library's top-level modules (90/5/5 train/valid/test)
A run records a local file or folder by its absolute path (`resolve_dataset`), so it can be
evaluated or resumed from any directory.

Tokenizers: `char` (one token per character) and `word` (WikiText convention: whitespace tokens,
one `<eos>` per line, vocabulary from the train split, other words map to `<unk>`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import platform
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.core.paths import cache_dir
from supernet.config import TOKENIZERS

SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"
_SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "validation", "val", "dev"),
                  "test": ("test",)}


# -- corpora ------------------------------------------------------------------------------------

def is_local(spec: str) -> bool:
    return spec != "builtin" and not spec.startswith("hf:")


def resolve_dataset(spec: str) -> str:
    """The spec a run records: a local file or folder as an absolute path, others unchanged."""
    return str(Path(spec).expanduser().resolve()) if is_local(spec) else spec


def check_recorded_dataset(spec: str, recorded_in: str | Path) -> None:
    """A local dataset recorded in a checkpoint must still be where it was at training time."""
    if is_local(spec) and not Path(spec).exists():
        raise UserError(f"dataset {spec} recorded in {recorded_in} no longer exists (moved or "
                        f"deleted since training?); put it back at that path")


def load_corpus(spec: str) -> dict[str, str]:
    """Text of each available split ('train', 'valid' and possibly 'test') of a dataset spec."""
    if spec == "builtin":
        return split_text(builtin_text(), (0.9, 0.05, 0.05))
    if spec.startswith("hf:"):
        return _load_hub(spec)
    path = Path(spec)
    if path.is_file():
        return split_text(read_text(path), (0.9, 0.1))
    if path.is_dir():
        files = {}
        for split, aliases in _SPLIT_ALIASES.items():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                           and any(a in p.name.lower().replace("-", ".").split(".")
                                   for a in aliases))
            if found:
                files[split] = found[0]
        missing = {"train", "valid"} - set(files)
        if missing:
            raise UserError(f"dataset folder {path}: no {' or '.join(sorted(missing))} file "
                            f"(expected names like train.txt, valid.txt, test.txt)")
        return {split: read_text(file) for split, file in files.items()}
    raise UserError(f"dataset '{spec}': not a file, a folder, 'hf:NAME[:CONFIG]' or 'builtin'")


def split_text(text: str, fractions: tuple[float, ...]) -> dict[str, str]:
    """Contiguous splits of one text: first fraction train, then valid, then test."""
    out, start = {}, 0
    for name, frac in zip(SPLITS, fractions):
        end = len(text) if name == SPLITS[len(fractions) - 1] else start + int(len(text) * frac)
        out[name] = text[start:end]
        start = end
    return out


@functools.lru_cache(maxsize=1)
def builtin_text() -> str:
    """Docstrings of the standard library's top-level modules, in file-name order. Parsing the
    library takes seconds, so the text is kept in the cache folder (nas.core.paths.cache_dir)
    under this Python's version and library path, with its SHA-256 on the first line; a file
    that fails the check, or a folder that cannot be written, only costs the parse again."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    where = hashlib.sha256(str(stdlib).encode()).hexdigest()[:12]
    cached = cache_dir() / f"builtin-corpus-py{platform.python_version()}-{where}.txt"
    try:
        digest, _, text = cached.read_text(encoding="utf-8").partition("\n")
        if digest == _sha256(text):
            return text
    except (OSError, UnicodeDecodeError):
        pass
    text = _stdlib_docstrings(stdlib)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cached, f"{_sha256(text)}\n{text}", "builtin corpus cache")
    except (OSError, UserError):
        pass
    return text


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stdlib_docstrings(stdlib: Path) -> str:
    docs: list[str] = []
    for path in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40 and doc.isascii():
                    docs.append(doc)
    if not docs:
        raise UserError(f"builtin corpus: no docstrings found under {stdlib}")
    return "\n\n".join(docs) + "\n"


def read_text(path: Path) -> str:
    """A dataset file's text; a file that is not UTF-8 text is a UserError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"dataset file {path} is not UTF-8 text (byte {exc.start} is "
                        f"{exc.object[exc.start]:#04x}); give a text file") from None
    except OSError as exc:
        raise UserError(f"cannot read dataset file {path}: {exc.strerror or exc}") from None
    if "\x00" in text:
        raise UserError(f"dataset file {path} is not UTF-8 text (it holds NUL bytes: a binary "
                        f"file?); give a text file")
    return text


def _load_hub(spec: str) -> dict[str, str]:
    from datasets import load_dataset

    name, _, config = spec[3:].partition(":")
    if not name:
        raise UserError(f"dataset '{spec}': expected hf:NAME[:CONFIG]")
    try:
        ds = load_dataset(name, config or None)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"could not load Hugging Face dataset '{spec[3:]}' (offline? "
                        f"use a local file or folder, or 'builtin'): {first}") from None
    out = {}
    for split, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in ds:
                col = "text" if "text" in ds[alias].column_names else ds[alias].column_names[0]
                rows = ds[alias][col]
                ends_with_newline = all(r.endswith("\n") for r in rows[:100] if r)
                out[split] = ("" if ends_with_newline else "\n").join(rows)
                break
    if "train" not in out or "valid" not in out:
        raise UserError(f"Hugging Face dataset '{spec[3:]}' lacks a train or validation split")
    return out


# -- tokenizers ---------------------------------------------------------------------------------

@dataclass
class Tokenizer:
    kind: str                              # "char" or "word"
    vocab: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZERS:
            raise UserError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got '{self.kind}'")
        self.index = {tok: i for i, tok in enumerate(self.vocab)}

    @classmethod
    def build(cls, kind: str, corpus: dict[str, str]) -> Tokenizer:
        """char: every character of every split (no unknowns); word: the train split + <unk>."""
        if kind == "char":
            return cls(kind, sorted(set("".join(corpus.values()))))
        if kind == "word":
            words = dict.fromkeys(cls("word", []).split(corpus["train"]))   # first-seen order
            words.setdefault(UNK)
            return cls(kind, list(words))
        return cls(kind, [])   # raises the UserError

    def split(self, text: str) -> list[str]:
        if self.kind == "char":
            return list(text)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [w for line in lines for w in line.split() + [EOS]]

    def encode(self, text: str) -> torch.Tensor:
        if self.kind == "char":
            ids = self._char_ids(text)
            unknown = np.flatnonzero(ids < 0)
            if len(unknown):
                self._not_in_vocabulary(text[unknown[0]])
            return torch.from_numpy(ids)
        unk = self.index.get(UNK)
        try:
            ids = [self.index[t] if unk is None else self.index.get(t, unk)
                   for t in self.split(text)]
        except KeyError as exc:
            self._not_in_vocabulary(exc.args[0])
        return torch.tensor(ids, dtype=torch.long)

    @functools.cached_property
    def _char_table(self) -> np.ndarray:
        """Id by code point, up to one past the vocabulary's highest (made once per tokenizer);
        -1, or <unk>'s id, for the code points not in it, the last entry standing for every
        code point above."""
        chars = {ord(t): i for t, i in self.index.items() if len(t) == 1}
        table = np.full(max(chars, default=0) + 2, self.index.get(UNK, -1), dtype=np.int64)
        table[list(chars)] = list(chars.values())
        return table

    def _char_ids(self, text: str) -> np.ndarray:
        """Each character's id (-1: unknown) looked up in `_char_table`, for the whole text at
        once (on the builtin corpus, 5x faster than a loop over its characters)."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        table = self._char_table
        return table[np.minimum(codes, len(table) - 1)]

    def _not_in_vocabulary(self, token: str) -> NoReturn:
        raise UserError(f"{self.kind} tokenizer: token {token!r} is not in the "
                        f"vocabulary") from None

    def decode(self, ids: list[int]) -> str:
        """Text of token ids: characters joined, or words joined by spaces with <eos> as a
        line break (the inverse of `encode` for text of known words)."""
        tokens = [self.vocab[i] for i in ids]
        if self.kind == "char":
            return "".join(tokens)
        parts: list[str] = []
        for tok in tokens:
            if tok == EOS:
                parts.append("\n")
            else:
                parts.append(tok if not parts or parts[-1] == "\n" else " " + tok)
        return "".join(parts)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "vocab": self.vocab}

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        return cls(data["kind"], list(data["vocab"]))


# -- batches ------------------------------------------------------------------------------------

def load_tokens(spec: str, tokenizer: Tokenizer | str) -> tuple[Tokenizer, dict[str, torch.Tensor]]:
    """Read a dataset spec, build the tokenizer (or use the given one) and encode every split."""
    corpus = load_corpus(spec)
    if isinstance(tokenizer, str):
        tokenizer = Tokenizer.build(tokenizer, corpus)
    return tokenizer, {split: tokenizer.encode(text) for split, text in corpus.items()}


def get_batch(tokens: torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows (nanoGPT): inputs x and next-token targets y, each [batch, block]."""
    if len(tokens) <= block_size:
        raise UserError(f"split has {len(tokens)} tokens, fewer than the context + 1 "
                        f"({block_size + 1})")
    ix = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    x = torch.stack([tokens[i:i + block_size] for i in ix.tolist()])
    y = torch.stack([tokens[i + 1:i + 1 + block_size] for i in ix.tolist()])
    return x, y


def eval_windows(tokens: torch.Tensor, block_size: int,
                 max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed evaluation set: non-overlapping windows over the first `max_tokens` tokens."""
    if max_tokens is not None:
        tokens = tokens[:max_tokens + 1]
    n = (len(tokens) - 1) // block_size
    if n < 1:
        raise UserError(f"evaluation split has {len(tokens)} tokens, fewer than the context + 1 "
                        f"({block_size + 1})")
    x = tokens[:n * block_size].view(n, block_size)
    y = tokens[1:n * block_size + 1].view(n, block_size)
    return x, y
