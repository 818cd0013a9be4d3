"""Train a small character-level transformer language model with kiln.

    pip install "kiln[examples]"        # tqdm for the progress bar
    python examples/train_char_transformer.py    # about 3.5 minutes of one core

The text is the help that ships inside Python itself: `pydoc_data.topics`, the
module behind `help("if")`, holds the chapters of the Python Language Reference
as plain text. The script keeps its prose paragraphs (about 250 KB; indented code
and grammar blocks and heading rules are dropped), so nothing is downloaded and
every installation of a given Python version has the same text.

The model is a GPT-style decoder: token and position embeddings, pre-norm blocks
of causal self-attention (`F.scaled_dot_product_attention(..., is_causal=True)`)
and an MLP, and a linear layer that gives the next character's logits.
It trains with AdamW, a linear warm-up followed by cosine decay, and gradient
clipping. The script prints the unigram entropy of the text -- the loss of the
best model that ignores context -- and the validation loss, both in bits per
character, then samples text with temperature and top-k sampling. With the
defaults (1000 steps) validation loss ends near 2.0 bits per character against a
unigram entropy of 4.65; the samples are English-looking words and Python names
with the reference's punctuation. It exits non-zero if the validation loss does
not end below the unigram entropy minus --min-gain bits.
"""

import argparse
import math
import sys
import time

import kiln
import kiln.nn.functional as F
from kiln import nn
from tqdm import tqdm

LN2 = math.log(2.0)


def load_text():
    """The prose paragraphs of Python's built-in help topics, as one string."""
    from pydoc_data.topics import topics

    kept = []
    for name in sorted(topics):
        for line in topics[name].splitlines():
            if line[:1].isspace():
                continue  # code examples, grammar rules, tables
            if line and len(set(line)) == 1 and line[0] in "*=-":
                continue  # a heading's underline
            if line or (kept and kept[-1]):
                kept.append(line)  # at most one blank line in a row
    return "\n".join(kept)


class Vocabulary:
    """Maps each distinct character of the text to an integer id and back."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.ids = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        return kiln.tensor([self.ids[c] for c in text], dtype=kiln.int64)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids.tolist())


def split(data, block=4096, every=10):
    """Every 10th block of 4096 characters is held out for validation, the rest trains.

    Blocks from all through the text, rather than its last tenth, keep the validation text
    like the training text: the help topics are sorted by name, and the last ones are
    mostly about built-in types.
    """
    blocks = data.split(block)
    held_out = [b for i, b in enumerate(blocks) if i % every == every - 1]
    kept = [b for i, b in enumerate(blocks) if i % every != every - 1]
    return kiln.cat(kept), kiln.cat(held_out)


def unigram_entropy_bits(data, vocab_size):
    """Entropy of the character frequencies: bits per character for a context-free model."""
    counts = kiln.zeros(vocab_size, dtype=kiln.float64).index_add_(
        0, data, kiln.ones(len(data), dtype=kiln.float64)
    )
    p = counts[counts > 0] / counts.sum()
    return -(p * p.log2()).sum().item()


class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)  # queries, keys and values in one matrix product
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (batch, heads, length, head_dim)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x):
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab_size, context, dim=128, heads=4, layers=3, dropout=0.1):
        super().__init__()
        self.context = context
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(context, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # Small weights keep the residual stream and the initial logits near zero.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids):
        positions = kiln.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.tokens(ids) + self.positions(positions))
        return self.head(self.norm(self.blocks(x)))  # (batch, length, vocab) logits

    @kiln.no_grad()
    def generate(self, ids, length, temperature=0.8, top_k=10):
        """Extend ids (1, n) by `length` characters sampled one at a time."""
        for _ in range(length):
            logits = self(ids[:, -self.context :])[:, -1] / temperature
            if top_k:
                kth = kiln.topk(logits, top_k).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            next_id = kiln.multinomial(F.softmax(logits, dim=-1), 1)
            ids = kiln.cat([ids, next_id], dim=1)
        return ids


def get_batch(data, batch_size, context, generator=None):
    """batch_size random windows of the text, and the same windows shifted by one."""
    starts = kiln.randint(0, len(data) - context - 1, (batch_size, 1), generator=generator)
    index = starts + kiln.arange(context + 1)
    windows = data[index]
    return windows[:, :-1], windows[:, 1:]


@kiln.no_grad()
def validation_loss(model, data, batch_size, context, batches):
    """Mean loss in nats over a fixed set of validation windows (the same every call)."""
    model.eval()
    generator = kiln.Generator().manual_seed(1234)
    total = 0.0
    for _ in range(batches):
        x, y = get_batch(data, batch_size, context, generator)
        total += F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    model.train()
    return total / batches


def warmup_cosine(optimizer, warmup, steps):
    """Linear warm-up to the full learning rate, then cosine decay to a tenth of it."""
    warm = kiln.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    decay = kiln.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(steps - warmup, 1), eta_min=optimizer.defaults["lr"] / 10
    )
    return kiln.optim.lr_scheduler.SequentialLR(optimizer, [warm, decay], milestones=[warmup])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64, help="characters the model sees")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--sample-length", type=int, default=300)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="kiln (OpenMP and OpenBLAS) threads; more help only on idle cores",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where to train, e.g. cpu or cuda")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (mixed precision)")
    parser.add_argument(
        "--min-gain",
        type=float,
        default=1.0,
        help="exit non-zero unless validation loss ends this many bits per "
        "character below the unigram entropy",
    )
    args = parser.parse_args(argv)

    # The matrices here are a couple of thousand rows by 128-512 columns, too small for extra
    # threads to pay off on a shared machine: with 2 threads on 2 busy cores a step took 3-5x
    # longer than with 1, as OpenMP and OpenBLAS threads wait on each other for a core.
    kiln.set_num_threads(args.threads)
    kiln.manual_seed(args.seed)

    text = load_text()
    vocab = Vocabulary(text)
    data = vocab.encode(text)
    train_data, val_data = split(data)
    entropy = unigram_entropy_bits(train_data, len(vocab))
    device = kiln.device(args.device)
    train_data, val_data = train_data.to(device), val_data.to(device)
    print(f"text: {len(text):,} characters of Python's help topics, {len(vocab)} distinct")
    print(f"unigram entropy: {entropy:.3f} bits per character")

    model = CharTransformer(
        len(vocab), args.context, args.dim, args.heads, args.layers, args.dropout
    ).to(device)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    # Weight decay on matrices only, as usual for transformers: not on biases, norms or positions.
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "positions" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() != 2 or "positions" in n]
    optimizer = kiln.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
    )
    scheduler = warmup_cosine(optimizer, warmup=max(args.steps // 20, 1), steps=args.steps)

    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc="training", unit="step")
    recent = []  # training losses since the last evaluation, in bits
    val_bits = float("nan")
    for step in bar:
        x, y = get_batch(train_data, args.batch_size, args.context)
        with kiln.autocast(device.type, dtype=kiln.bfloat16, enabled=args.amp):
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        scheduler.step()
        recent.append(loss.item() / LN2)
        train_bits = sum(recent) / len(recent)
        bar.set_postfix(loss=f"{train_bits:.3f} bits", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if step % args.eval_every == 0 or step == args.steps:
            val_bits = (
                validation_loss(model, val_data, args.batch_size, args.context, args.eval_batches)
                / LN2
            )
            tqdm.write(
                f"step {step:5d}  train loss {train_bits:.3f}  "
                f"validation loss {val_bits:.3f} bits per character"
            )
            recent = []
    elapsed = time.perf_counter() - start

    print(
        f"validation loss {val_bits:.3f} bits per character after {args.steps} steps "
        f"in {elapsed:.1f}s (unigram entropy {entropy:.3f})"
    )
    model.eval()
    for i in range(args.samples):
        prompt = vocab.encode("The ").unsqueeze(0).to(device)
        sample = vocab.decode(model.generate(prompt, args.sample_length)[0].cpu())
        print(f"\n--- sample {i + 1} (temperature 0.8, top-k 10) ---\n{sample}")
    if not val_bits < entropy - args.min_gain:
        sys.exit(
            f"validation loss {val_bits:.3f} is not {args.min_gain} bits below "
            f"the unigram entropy {entropy:.3f}"
        )


if __name__ == "__main__":
    main()
