"""A classification task whose answer is known, for the tests of ``cnnprof eval``: images of
coloured shapes on noise, generated with a seed and saved as PNG into class folders, and a tiny
network trained on other images of the same kind until it is accurate. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 32
CLASSES = 4  # red disc, green square, blue bar, red ring (the same colour as the disc: shape decides)
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def shape_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """One SIZE x SIZE x 3 uint8 image of class ``label``: a shape of its colour, at a random place
    and size, on noise (with some colour jitter, so the task is not trivial)."""
    img = rng.integers(0, 90, size=(SIZE, SIZE, 3)).astype(np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cy, cx = rng.uniform(10, SIZE - 10, size=2)
    r = rng.uniform(5, 9)
    colour = np.array([(220, 40, 40), (40, 200, 40), (50, 60, 230), (220, 40, 40)][label], np.float32)
    colour = np.clip(colour + rng.normal(0, 40, size=3), 0, 255)
    if label == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif label == 1:
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif label == 2:
        mask = (abs(yy - cy) <= r / 3) & (abs(xx - cx) <= r * 1.4)
    else:
        d = (yy - cy) ** 2 + (xx - cx) ** 2
        mask = (d <= r * r) & (d >= (r * 0.55) ** 2)
    img[mask] = colour
    return img.astype(np.uint8)


def normalised(images: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 -> N x 3 x H x W float32, as the network sees them (the test's own
    preprocessing: no resize and no crop at crop_pct 1.0 on SIZE x SIZE images)."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def dataset(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(CLASSES), n_per_class)
    return np.stack([shape_image(int(k), rng) for k in labels]), labels


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> list[Path]:
    """Save as PNG into ``root/<class index>/``; returns the paths in the order of ``images``."""
    from PIL import Image

    paths = []
    for i, (img, k) in enumerate(zip(images, labels)):
        path = root / str(int(k)) / f"img{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def tiny_net():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES),
    )


def trained_net(steps: int = 80, seed: int = 1):
    """The tiny network trained (Adam, batches of 64) on generated images of seed ``seed``."""
    import torch

    torch.set_num_threads(1)
    images, labels = dataset(100, seed)
    x, y = torch.from_numpy(normalised(images)), torch.from_numpy(labels)
    net = tiny_net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()
