"""A PyTorch-style training program, run unchanged against kiln and torch.

`program(torch)` is written as a PyTorch user writes it; it is called once with
the torch module and once with kiln, and both runs must agree step by step.
It exercises what such scripts rely on: a custom Module with Parameters,
`.to()` after the optimizer was built, gradient accumulation over two
backward() calls, in-place updates through `param.data`, `len(tensor)`,
`f"{loss:.6f}"`, a scheduler, and state_dict round trips.
"""

import kiln
import numpy as np
from compare import require_torch

torch_module = require_torch()


def program(torch, X, Y):
    nn = torch.nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))
            self.b = nn.Parameter(torch.zeros(1))
            self.register_buffer("steps", torch.zeros(1))

        def forward(self, x):
            return x.mul(self.w).sum(1).add(self.b)

    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    model = model.to(torch.float64)
    x, y = torch.tensor(X), torch.tensor(Y)
    half = len(x) // 2
    log = []
    for epoch in range(30):
        model.train()
        opt.zero_grad()
        for part in (slice(0, half), slice(half, len(x))):
            diff = model(x[part]).sub(y[part])
            loss = diff.mul(diff).sum().div(len(x))
            loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.steps.add_(1)
        for p in model.parameters():
            p.data.mul_(0.999)
        model.eval()
        with torch.no_grad():
            diff = model(x).sub(y)
            full = diff.mul(diff).sum().div(len(x))
        log.append(f"{full:.6f}")
    state = {k: v.tolist() for k, v in model.state_dict().items()}
    return log, state, opt.state_dict()["param_groups"][0]["lr"]


def test_training_program_runs_the_same():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    Y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.01 * rng.standard_normal(40)
    klog, kstate, klr = program(kiln, X, Y)
    tlog, tstate, tlr = program(torch_module, X, Y)
    assert klog == tlog
    assert float(klog[-1]) < 0.02 * float(klog[0])
    assert kstate.keys() == tstate.keys() and kstate["steps"] == [30.0]
    for k in kstate:
        np.testing.assert_allclose(kstate[k], tstate[k], rtol=1e-9)
    assert klr == tlr
