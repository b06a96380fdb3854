"""Text generation from any subnet with inherited weights (as nanoGPT's sample.py).

Each new token is drawn from the last position's softmax at `temperature`, restricted to the
`top_k` most likely tokens when given. Up to the model's block size, tokens are fed one at a time
with per-layer decode states (`supernet.model.DecodeState`): a KV cache for softmax layers, the
window and global tokens for sparse ones, and a constant-size state for taylor layers; past it,
the context is cropped to the block size and run whole at every step (positions are absolute).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.core.arch import Arch
from nas.core.errors import UserError
from supernet.data import Tokenizer
from supernet.model import ElasticGPT, decode_states


@torch.no_grad()
def generate(model: ElasticGPT, arch: Arch, idx: torch.Tensor, new_tokens: int,
             temperature: float = 1.0, top_k: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend the token ids idx [batch, time] by `new_tokens` sampled tokens (the same tokens
    as running the whole cropped context every step, up to rounding)."""
    if temperature <= 0:
        raise UserError(f"temperature must be positive, got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"top-k must be >= 1, got {top_k}")
    was_training = model.training
    model.eval()
    # a few-shot supernet (supernet.fewshot) runs each subnet in the sub-supernet of its d
    net, arch = model.route(arch) if hasattr(model, "route") else (model, arch)
    block, states, fed = net.config.block_size, decode_states(arch), 0
    for _ in range(new_tokens):
        if idx.size(1) <= block:                 # feed the tokens the states do not hold yet
            for t in range(fed, idx.size(1)):
                logits, _ = net(idx[:, t:t + 1], arch, states=states)
            fed = idx.size(1)
        else:
            logits, _ = net(idx[:, -block:], arch)
        logits = logits[:, -1, :].float() / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
            logits[logits < kth] = -float("inf")
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
        idx = torch.cat((idx, nxt), dim=1)
    model.train(was_training)
    return idx


def prompt_ids(tokenizer: Tokenizer, prompt: str) -> list[int]:
    """Token ids of a prompt. An empty prompt starts a new line (nanoGPT's "\\n"); a word prompt
    whose last line has no newline is continued (no <eos> after it)."""
    if not prompt:
        prompt = "\n"
    ids = tokenizer.encode(prompt).tolist()
    if tokenizer.kind == "word" and not prompt.endswith("\n"):
        ids = ids[:-1]
    if not ids:
        raise UserError(f"prompt {prompt!r} holds no token")
    return ids


def sample(model: ElasticGPT, arch: Arch, tokenizer: Tokenizer, prompt: str = "",
           new_tokens: int = 200, num_samples: int = 1, temperature: float = 1.0,
           top_k: int | None = None, seed: int = 1337) -> list[str]:
    """`num_samples` texts of the prompt followed by `new_tokens` generated tokens; the same
    seed gives the same texts (the first does not depend on `num_samples`)."""
    if new_tokens < 0 or num_samples < 1:
        raise UserError(f"need tokens >= 0 and num-samples >= 1, got {new_tokens} and "
                        f"{num_samples}")
    device = next(model.parameters()).device
    start = torch.tensor([prompt_ids(tokenizer, prompt)], dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    return [tokenizer.decode(generate(model, arch, start, new_tokens, temperature, top_k,
                                      generator)[0].tolist())
            for _ in range(num_samples)]
