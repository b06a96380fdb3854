"""A GPT-style decoder, static (`GPT`) and elastic (`ElasticGPT`), in the style of nanoGPT.

Both are pre-LayerNorm decoders with learned positions, tied input/output embeddings and causal
attention through `F.scaled_dot_product_attention`. Layer i has `heads[i]` heads of width
`head_dim` (attention width heads[i] * head_dim, decoupled from the embedding width d) and an FFN
of width `ffn[i]`, as in `nas.core.arch.Arch`.

`ElasticGPT` holds the weights of the largest architecture of a `SearchSpace`. A subnet uses the
first k rows and columns of every weight (HAT, AttentiveNAS, BigNAS): the first d embedding
channels, the first heads[i] heads, the first ffn[i] hidden units, the first L layers. Slicing
makes views, so choosing a subnet copies nothing, and the largest subnet does exactly the work of
a `GPT` of the same architecture. `ElasticGPT.export(arch)` copies a subnet's weights into a `GPT`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.core.arch import Arch, SearchSpace


@dataclass
class ModelConfig:
    vocab_size: int
    block_size: int          # longest context (number of learned positions)
    dropout: float = 0.0     # used only when forward(..., dropout=True) in training mode


# -- the computation, shared by the static and the elastic model --------------------------------

def attention(x: torch.Tensor, wq, bq, wk, bk, wv, bv, wo, bo, head_dim: int,
              dropout: float) -> torch.Tensor:
    """Causal multi-head self-attention; the number of heads is wq.shape[0] // head_dim."""
    B, T, _ = x.shape
    heads = wq.shape[0] // head_dim
    q, k, v = (F.linear(x, w, b).view(B, T, heads, head_dim).transpose(1, 2)
               for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
    y = y.transpose(1, 2).reshape(B, T, heads * head_dim)
    return F.dropout(F.linear(y, wo, bo), dropout)


def feed_forward(x: torch.Tensor, w1, b1, w2, b2, dropout: float) -> torch.Tensor:
    return F.dropout(F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2), dropout)


def init_weights(module: nn.Module, n_layers: int) -> None:
    """GPT-2 initialisation: N(0, 0.02), output projections scaled by 1/sqrt(2 * layers)."""
    for name, p in module.named_parameters():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            nn.init.ones_(p)
        elif p.dim() == 1:
            nn.init.zeros_(p)
        elif name.endswith(("wo", "w2")):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))
        else:
            nn.init.normal_(p, std=0.02)


class Block(nn.Module):
    """Weights of one pre-LN decoder layer, stored as [out, in] like nn.Linear."""

    def __init__(self, d: int, attn: int, ffn: int) -> None:
        super().__init__()
        P = lambda *shape: nn.Parameter(torch.empty(*shape))  # noqa: E731
        self.ln1 = nn.LayerNorm(d)
        self.wq, self.wk, self.wv = P(attn, d), P(attn, d), P(attn, d)
        self.bq, self.bk, self.bv = P(attn), P(attn), P(attn)
        self.wo, self.bo = P(d, attn), P(d)
        self.ln2 = nn.LayerNorm(d)
        self.w1, self.b1 = P(ffn, d), P(ffn)
        self.w2, self.b2 = P(d, ffn), P(d)

    def sliced(self, d: int, attn: int, ffn: int) -> dict[str, torch.Tensor]:
        """Views of the first rows/columns: d embedding channels, `attn` attention, `ffn` hidden."""
        return {
            "ln1_w": self.ln1.weight[:d], "ln1_b": self.ln1.bias[:d],
            "wq": self.wq[:attn, :d], "bq": self.bq[:attn],
            "wk": self.wk[:attn, :d], "bk": self.bk[:attn],
            "wv": self.wv[:attn, :d], "bv": self.bv[:attn],
            "wo": self.wo[:d, :attn], "bo": self.bo[:d],
            "ln2_w": self.ln2.weight[:d], "ln2_b": self.ln2.bias[:d],
            "w1": self.w1[:ffn, :d], "b1": self.b1[:ffn],
            "w2": self.w2[:d, :ffn], "b2": self.b2[:d],
        }

    def run(self, x: torch.Tensor, w: dict[str, torch.Tensor], head_dim: int,
            dropout: float) -> torch.Tensor:
        d = x.shape[-1]
        h = F.layer_norm(x, (d,), w["ln1_w"], w["ln1_b"])
        x = x + attention(h, w["wq"], w["bq"], w["wk"], w["bk"], w["wv"], w["bv"], w["wo"],
                          w["bo"], head_dim, dropout)
        h = F.layer_norm(x, (d,), w["ln2_w"], w["ln2_b"])
        return x + feed_forward(h, w["w1"], w["b1"], w["w2"], w["b2"], dropout)


class _Decoder(nn.Module):
    """Embeddings, a stack of `Block`s sized for `arch`, final LayerNorm, tied LM head."""

    def __init__(self, config: ModelConfig, arch: Arch) -> None:
        super().__init__()
        self.config = config
        d = arch.d
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.block_size, d)
        self.blocks = nn.ModuleList(Block(d, arch.attn_width(i), arch.ffn[i])
                                    for i in range(arch.layers))
        self.ln_f = nn.LayerNorm(d)
        init_weights(self, arch.layers)

    def _forward(self, idx: torch.Tensor, arch: Arch, targets: torch.Tensor | None,
                 dropout: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than the context "
                             f"({self.config.block_size})")
        p = self.config.dropout if (dropout and self.training) else 0.0
        d = arch.d
        wte = self.wte.weight[:, :d]
        x = F.embedding(idx, wte) + self.wpe.weight[:T, :d]
        x = F.dropout(x, p)
        for i in range(arch.layers):
            block = self.blocks[i]
            x = block.run(x, block.sliced(d, arch.attn_width(i), arch.ffn[i]), arch.head_dim, p)
        x = F.layer_norm(x, (d,), self.ln_f.weight[:d], self.ln_f.bias[:d])
        logits = F.linear(x, wte)                               # tied embedding
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


class GPT(_Decoder):
    """A static model of one architecture (what `nas export-subnet` writes)."""

    def __init__(self, config: ModelConfig, arch: Arch) -> None:
        super().__init__(config, arch)
        self.arch = arch

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                dropout: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._forward(idx, self.arch, targets, dropout)


class ElasticGPT(_Decoder):
    """The supernet: weights of the space's largest architecture, any subnet by slicing."""

    def __init__(self, config: ModelConfig, space: SearchSpace) -> None:
        super().__init__(config, space.largest())
        self.space = space

    def forward(self, idx: torch.Tensor, arch: Arch | None = None,
                targets: torch.Tensor | None = None,
                dropout: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run subnet `arch` (the largest when None); dropout only when asked (the largest)."""
        arch = self.space.largest() if arch is None else self.space.check(arch)
        return self._forward(idx, arch, targets, dropout)

    @torch.no_grad()
    def export(self, arch: Arch) -> GPT:
        """A standalone `GPT` holding copies of the subnet's weights (and nothing else)."""
        self.space.check(arch)
        model = GPT(self.config, arch)
        d = arch.d
        model.wte.weight.copy_(self.wte.weight[:, :d])
        model.wpe.weight.copy_(self.wpe.weight[:, :d])
        model.ln_f.weight.copy_(self.ln_f.weight[:d])
        model.ln_f.bias.copy_(self.ln_f.bias[:d])
        for i, block in enumerate(model.blocks):
            src = self.blocks[i].sliced(d, arch.attn_width(i), arch.ffn[i])
            dst = block.sliced(d, arch.attn_width(i), arch.ffn[i])
            for name, tensor in dst.items():
                tensor.copy_(src[name])
        return model.to(self.wte.weight.device)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
