"""One full training step (forward, loss, zero_grad, backward, optimizer.step) of small
models against PyTorch: the same architecture, the same starting weights (kiln loads
PyTorch's), the same batch."""

import kiln
import numpy as np

from benchmarks.harness import Case

DESCRIPTION = "full training step (fwd, loss, zero_grad, bwd, optimizer.step) vs PyTorch (float32)"


def _mlp(lib, width=512):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def _cnn(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10))


def _transformer(lib, d_model=256, nhead=4, num_layers=4):
    nn = lib.nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead,
                                               dim_feedforward=4 * d_model, dropout=0.0,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers)
            self.head = nn.Linear(d_model, 10)

        def forward(self, x):
            return self.head(self.encoder(x).mean(dim=1))

    return Classifier()


def paired_steps(torch, build, optimizer, x, y, device="cpu", autocast=False):
    """One training step of `build(lib)` under `optimizer(lib, params)` on `device` for kiln
    and for torch, from the same starting weights (kiln loads torch's) and batch; each
    waits for the GPU, and runs under bfloat16 autocast with `autocast`."""
    torch.manual_seed(0)
    tmodel = build(torch).to(device)
    kmodel = build(kiln)
    kmodel.load_state_dict({k: kiln.tensor(v.detach().cpu().numpy().copy())
                            for k, v in tmodel.state_dict().items()})
    kmodel.to(device)

    def make_step(lib, model, xs, ys):
        opt = optimizer(lib, model.parameters())
        loss_fn = lib.nn.CrossEntropyLoss()

        def step():
            with lib.autocast(device, dtype=lib.bfloat16, enabled=autocast):
                loss = loss_fn(model(xs), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device != "cpu":
                lib.cuda.synchronize()

        return step

    return (make_step(kiln, kmodel, kiln.tensor(x, device=device), kiln.tensor(y, device=device)),
            make_step(torch, tmodel, torch.tensor(x, device=device),
                      torch.tensor(y, device=device)))


def step_case(torch, name, build, optimizer, x, y, min_rounds=None, device="cpu",
              autocast=False):
    """A Case timing paired_steps' kiln step against torch's."""
    run_kiln, run_torch = paired_steps(torch, build, optimizer, x, y, device, autocast)
    return Case(name, run_kiln, run_torch, "torch", target=("<=", 1.0),
                threaded=device == "cpu", min_rounds=min_rounds)


def cases():
    import torch

    rng = np.random.default_rng(0)

    def batch(shape):
        return (rng.standard_normal(shape, dtype=np.float32),
                rng.integers(0, 10, shape[0]).astype(np.int64))

    return [
        step_case(torch, "MLP 784-512-512-10 step, batch 128, Adam", _mlp,
                   lambda lib, p: lib.optim.Adam(p, lr=1e-3), *batch((128, 784))),
        step_case(torch, "CNN 2xconv 3x32x32 step, batch 64, SGD momentum", _cnn,
                   lambda lib, p: lib.optim.SGD(p, lr=0.01, momentum=0.9),
                   *batch((64, 3, 32, 32))),
        step_case(torch, "Transformer enc 4x256 step, (16, 128, 256), AdamW", _transformer,
                   lambda lib, p: lib.optim.AdamW(p, lr=1e-3), *batch((16, 128, 256)),
                   min_rounds=2),  # a step takes ~1 s or more: keeps the suite ~1 min
    ]
