"""Train a two-layer MLP on a synthetic classification task with kiln's autograd.

Uses only tensors and autograd (kiln.nn lands with the neural-network issue):
the loss must fall well below its starting value, or the script exits non-zero.
"""

import sys

import numpy as np

import kiln


def main(steps=300, lr=0.5):
    rng = np.random.default_rng(0)
    # Two interleaved blobs in 2-D; the label is which blob a point came from.
    n = 512
    labels = rng.integers(0, 2, n)
    centers = np.array([[-1.0, -1.0], [1.0, 1.0]])
    points = centers[labels] + 0.7 * rng.standard_normal((n, 2))
    x = kiln.tensor(points, dtype=kiln.float32)
    y = kiln.tensor(labels.reshape(n, 1), dtype=kiln.float32)

    w1 = kiln.tensor(rng.standard_normal((2, 16)) * 0.5, dtype=kiln.float32, requires_grad=True)
    w2 = kiln.tensor(rng.standard_normal((16, 1)) * 0.5, dtype=kiln.float32, requires_grad=True)
    params = [w1, w2]

    def forward(inp):
        # A dense layer as broadcast multiply + sum (matmul arrives with the linalg ops).
        h = (inp.unsqueeze(2) * w1.unsqueeze(0)).sum(1)
        h = h / (1 + (-h).exp())  # SiLU
        logits = (h.unsqueeze(2) * w2.unsqueeze(0)).sum(1)
        return 1 / (1 + (-logits).exp())

    first = None
    for step in range(steps):
        p = forward(x)
        # Mean squared error on the probabilities keeps this to ops kiln has everywhere.
        loss = ((p - y) * (p - y)).sum() / n
        for q in params:
            q.grad = None
        loss.backward()
        with kiln.no_grad():
            for q in params:
                q.sub_(q.grad * lr)
        if first is None:
            first = loss.item()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    final = loss.item()
    print(f"loss {first:.4f} -> {final:.4f}")
    if not final < 0.5 * first:
        sys.exit("training did not reduce the loss")


if __name__ == "__main__":
    main()
