"""Sine-wave prediction with stacked LSTMCells and L-BFGS, as a PyTorch user writes it.

The shape of the classic example: a model that unrolls two LSTMCells by hand over
the time steps of a batch of sine waves, learns to predict the next value, is
trained in float64 with L-BFGS (a closure that recomputes the loss), and then
extrapolates `future` steps by feeding its own predictions back in. The waves are
drawn with NumPy and so are the initial weights, so every run starts from the
same point.
"""

import argparse
import math

import numpy as np
import torch
from torch import nn, optim


def sine_waves(count, length, period, seed):
    """count sine waves of the given period, each starting at a random phase."""
    rng = np.random.default_rng(seed)
    x = np.arange(length) + rng.integers(-4 * period, 4 * period, size=(count, 1))
    return np.sin(x / period).astype(np.float64)


class Sequence(nn.Module):
    def __init__(self, hidden=24):
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.lstm2 = nn.LSTMCell(hidden, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, input, future=0):
        outputs = []
        n = input.size(0)
        h_t = torch.zeros(n, self.hidden, dtype=torch.double)
        c_t = torch.zeros(n, self.hidden, dtype=torch.double)
        h_t2 = torch.zeros(n, self.hidden, dtype=torch.double)
        c_t2 = torch.zeros(n, self.hidden, dtype=torch.double)
        output = None
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):  # keep going on its own predictions
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def numpy_init_(model, seed):
    """Every parameter uniform in +-1/sqrt(hidden), PyTorch's LSTMCell range, drawn by NumPy."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(model.hidden)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(p.shape))))


def main(argv=None):
    parser = argparse.ArgumentParser(description="sine-wave prediction with LSTMCells")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--future", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    data = sine_waves(count=24, length=60, period=8, seed=args.seed)
    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])

    seq = Sequence()
    numpy_init_(seq, args.seed)  # float64 from the start, like seq.double() on default weights
    seq.double()
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=10)
    for i in range(args.steps):

        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            print("loss:", loss.item())
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            pred = seq(test_input, future=args.future)
            loss = criterion(pred[:, : -args.future], test_target)
            print(
                "step {}: test loss {:.10f}, prediction of the next {} values {}".format(
                    i,
                    loss.item(),
                    args.future,
                    " ".join(f"{v:.6f}" for v in pred[0, -args.future :][::10].tolist()),
                )
            )


if __name__ == "__main__":
    main()
