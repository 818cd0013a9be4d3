"""An MNIST-style CNN classifier, written as a PyTorch user writes one.

The shape of the classic example: two convolutions, max pooling, two linear
layers and log_softmax, trained with nll_loss, Adadelta and a StepLR decay,
reporting test loss and accuracy after every epoch and saving the weights. The
digits are synthetic (noisy 12x12 class templates drawn with NumPy), and the
initial weights come from NumPy too, so every run -- on any library that
speaks this API -- starts from the same point.
"""

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)  # 12x12 -> 10x10
        self.conv2 = nn.Conv2d(8, 16, 3, 1)  # -> 8x8, pooled to 4x4
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def numpy_init_(model, seed):
    """Uniform weights and biases in PyTorch's default range +-1/sqrt(fan_in), drawn by NumPy."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                bound = 1.0 / math.sqrt(module.weight[0].numel())
                for p in (module.weight, module.bias):
                    values = rng.uniform(-bound, bound, size=tuple(p.shape))
                    p.copy_(torch.from_numpy(values.astype(np.float32)))


def synthetic_digits(n, seed):
    """n noisy 12x12 images of 10 smooth class templates, normalised like MNIST."""
    rng = np.random.default_rng(0)  # the templates are the same for every split
    coarse = rng.uniform(0.0, 1.0, size=(10, 4, 4))
    templates = coarse.repeat(3, axis=1).repeat(3, axis=2)  # 12x12 blocks
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = templates[labels] + rng.normal(0.0, 0.35, size=(n, 12, 12))
    images = (images - 0.5) / 0.4
    return TensorDataset(
        torch.from_numpy(images[:, None].astype(np.float32)), torch.from_numpy(labels)
    )


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            seen, total = batch_idx * len(data), len(train_loader.dataset)
            percent = 100.0 * batch_idx / len(train_loader)
            print(
                f"Train Epoch: {epoch} [{seen}/{total} ({percent:.0f}%)]\tLoss: {loss.item():.6f}"
            )


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    total = len(test_loader.dataset)
    test_loss /= total
    print(
        f"Test set: Average loss: {test_loss:.4f}, "
        f"Accuracy: {correct}/{total} ({100.0 * correct / total:.0f}%)"
    )
    return correct / total


def main(argv=None):
    parser = argparse.ArgumentParser(description="MNIST-style CNN on synthetic digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=3)
    parser.add_argument("--save-model", default="mnist_cnn.pt")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    use_accel = torch.accelerator.is_available()
    device = torch.accelerator.current_accelerator() if use_accel else torch.device("cpu")

    train_loader = DataLoader(synthetic_digits(640, seed=1), batch_size=args.batch_size)
    test_loader = DataLoader(synthetic_digits(400, seed=2), batch_size=args.test_batch_size)

    model = Net()
    numpy_init_(model, args.seed)
    model = model.to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    torch.save(model.state_dict(), args.save_model)
    reloaded = Net()
    reloaded.load_state_dict(torch.load(args.save_model))
    print("Reloaded model:")
    test(reloaded.to(device), device, test_loader)


if __name__ == "__main__":
    main()
