"""A word-level LSTM language model, written as a PyTorch user writes one.

The shape of the classic example: a Dictionary/Corpus that tokenizes text files
(one sentence per line, <eos> appended), batchify into columns, truncated
backpropagation through time with the hidden state detached between chunks, an
encoder/RNN/decoder model whose decoder shares the encoder's weight, plain SGD
written by hand (`p.data.add_(p.grad, alpha=-lr)`) after gradient-norm
clipping, a learning rate divided by 4 whenever validation loss stops
improving, the best weights saved and reloaded for the test score, and a few
words generated greedily at the end.

The corpus is synthetic: sentences from a random sparse Markov chain over a
small vocabulary, written to data/ first, then read back like any corpus. The
initial weights come from NumPy so that every run starts from the same point.
"""

import argparse
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Dictionary:
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus:
    def __init__(self, path):
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(path, "train.txt"))
        self.valid = self.tokenize(os.path.join(path, "valid.txt"))
        self.test = self.tokenize(os.path.join(path, "test.txt"))

    def tokenize(self, path):
        ids = []
        with open(path, encoding="utf8") as f:
            for line in f:
                for word in line.split() + ["<eos>"]:
                    ids.append(self.dictionary.add_word(word))
        return torch.tensor(ids, dtype=torch.int64)


def write_synthetic_corpus(path, seed, vocab=40, sentences=(400, 60, 60)):
    """Sentences from a Markov chain in which each word has three likely successors."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    successors = rng.integers(0, vocab, size=(vocab, 3))
    os.makedirs(path, exist_ok=True)
    for name, count in zip(("train", "valid", "test"), sentences):
        with open(os.path.join(path, f"{name}.txt"), "w", encoding="utf8") as f:
            for _ in range(count):
                word = rng.integers(0, vocab)
                sentence = [words[word]]
                for _ in range(rng.integers(3, 10)):
                    word = successors[word, rng.choice(3, p=[0.6, 0.3, 0.1])]
                    sentence.append(words[word])
                f.write(" ".join(sentence) + "\n")


class RNNModel(nn.Module):
    """Encoder, recurrent module and decoder; the decoder reuses the encoder's weight."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=True):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ("LSTM", "GRU"):
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("tied weights need nhid == emsize")
            self.decoder.weight = self.encoder.weight
        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (
                weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid),
            )
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def numpy_init_(model, seed, initrange=0.1):
    """Every parameter uniform in +-initrange, the decoder bias zero; drawn by NumPy."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            values = rng.uniform(-initrange, initrange, size=tuple(p.shape))
            p.copy_(torch.from_numpy(values.astype(np.float32)))
        model.decoder.bias.zero_()


def batchify(data, bsz):
    """Cut the token stream into bsz columns, dropping the remainder."""
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].view(-1)
    return data, target


def repackage_hidden(h):
    """Detach hidden states from their history, so backprop stops at the chunk's start."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def evaluate(model, criterion, data_source, bsz, bptt):
    model.eval()
    total_loss = 0.0
    hidden = model.init_hidden(bsz)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train(args, model, criterion, train_data, lr, epoch):
    model.train()
    total_loss = 0.0
    hidden = model.init_hidden(args.batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i, args.bptt)
        hidden = repackage_hidden(hidden)
        model.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        total_loss += loss.item()
        if batch % args.log_interval == 0 and batch > 0:
            cur_loss = total_loss / args.log_interval
            batches = len(train_data) // args.bptt
            print(
                f"| epoch {epoch:3d} | {batch:5d}/{batches:5d} batches | lr {lr:02.2f} "
                f"| loss {cur_loss:5.3f} | ppl {math.exp(cur_loss):8.3f}"
            )
            total_loss = 0.0


def generate(model, corpus, words, first="w0"):
    """Greedy decoding: feed each most likely word back in."""
    model.eval()
    hidden = model.init_hidden(1)
    input = torch.tensor([[corpus.dictionary.word2idx[first]]])
    out = [first]
    with torch.no_grad():
        for _ in range(words):
            output, hidden = model(input, hidden)
            word_idx = output[-1].argmax().item()
            input.fill_(word_idx)
            out.append(corpus.dictionary.idx2word[word_idx])
    return " ".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description="word-level RNN language model")
    parser.add_argument("--data", default="./data/synthetic")
    parser.add_argument("--model", default="LSTM", help="RNN_TANH, RNN_RELU, LSTM or GRU")
    parser.add_argument("--emsize", type=int, default=32)
    parser.add_argument("--nhid", type=int, default=32)
    parser.add_argument("--nlayers", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5.0)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--bptt", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1111)
    parser.add_argument("--log-interval", type=int, default=10)
    parser.add_argument("--save", default="model.pt")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    write_synthetic_corpus(args.data, args.seed)
    corpus = Corpus(args.data)
    eval_batch_size = 5
    train_data = batchify(corpus.train, args.batch_size)
    val_data = batchify(corpus.valid, eval_batch_size)
    test_data = batchify(corpus.test, eval_batch_size)

    ntokens = len(corpus.dictionary)
    model = RNNModel(args.model, ntokens, args.emsize, args.nhid, args.nlayers)
    numpy_init_(model, args.seed)
    criterion = nn.NLLLoss()
    print(f"{ntokens} words, {sum(p.numel() for p in model.parameters())} parameters")

    lr = args.lr
    best_val_loss = None
    for epoch in range(1, args.epochs + 1):
        train(args, model, criterion, train_data, lr, epoch)
        val_loss = evaluate(model, criterion, val_data, eval_batch_size, args.bptt)
        print(
            f"| end of epoch {epoch:3d} | valid loss {val_loss:5.3f} "
            f"| valid ppl {math.exp(val_loss):8.3f}"
        )
        if not best_val_loss or val_loss < best_val_loss:
            torch.save(model.state_dict(), args.save)
            best_val_loss = val_loss
        else:
            lr /= 4.0  # no improvement on the validation set: anneal

    model.load_state_dict(torch.load(args.save))
    test_loss = evaluate(model, criterion, test_data, eval_batch_size, args.bptt)
    print(f"| End of training | test loss {test_loss:5.3f} | test ppl {math.exp(test_loss):8.3f}")
    print("generated:", generate(model, corpus, 12))


if __name__ == "__main__":
    main()
