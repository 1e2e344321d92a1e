"""The networks: LeNet-5, a small VGG and ResNet-20, built from quantisable layers.

Every multiplication (first and last layers included) is in a :class:`~dnn.qnn.QLayer`, so every
product can be given an approximate multiplier. Layer names (``conv1``, ``layer2.1.conv2``, ``fc``)
are the keys of assignment files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dnn.qnn import QConv2d, QLinear

NETS = ("lenet5", "vgg", "resnet20")


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: 2 convolutions, 3 fully connected layers."""

    def __init__(self, channels: int = 1, size: int = 28, classes: int = 10):
        super().__init__()
        self.conv1 = QConv2d(channels, 6, 5, padding=2)
        self.conv2 = QConv2d(6, 16, 5)
        s = ((size // 2) - 4) // 2
        self.fc1 = QLinear(16 * s * s, 120)
        self.fc2 = QLinear(120, 84)
        self.fc3 = QLinear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class VGGSmall(nn.Module):
    """A small VGG: (conv-bn-relu x2, pool) x 3 with 16/32/64 channels, then two fully connected layers."""

    def __init__(self, channels: int = 1, size: int = 28, classes: int = 10):
        super().__init__()
        widths = (16, 32, 64)
        convs: list[nn.Module] = []
        cin = channels
        for w in widths:
            convs.append(QConv2d(cin, w, 3, padding=1, bn=True))
            convs.append(QConv2d(w, w, 3, padding=1, bn=True))
            cin = w
        self.features = nn.ModuleList(convs)
        s = size // 8
        self.fc1 = QLinear(widths[-1] * s * s, 128)
        self.fc2 = QLinear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.features):
            x = F.relu(conv(x))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    """ResNet basic block; the shortcut is the identity, subsampled and zero-padded where the shape
    changes (option A of He et al.), so it needs no multiplier."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = QConv2d(cin, cout, 3, stride=stride, padding=1, bn=True)
        self.conv2 = QConv2d(cout, cout, 3, padding=1, bn=True)
        self.stride = stride
        self.pad = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        short = x
        if self.stride != 1 or self.pad:
            short = x[:, :, ::self.stride, ::self.stride]
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(y + short)


class ResNet20(nn.Module):
    """ResNet-20 for small images (He et al. 2016, section 4.2): 3 stages of 3 blocks, 16/32/64 channels."""

    def __init__(self, channels: int = 1, size: int = 28, classes: int = 10):
        super().__init__()
        del size
        self.conv1 = QConv2d(channels, 16, 3, padding=1, bn=True)
        blocks: list[nn.Module] = []
        cin = 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(3):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, width, stride))
                cin = width
        self.layer1 = nn.Sequential(*blocks[0:3])
        self.layer2 = nn.Sequential(*blocks[3:6])
        self.layer3 = nn.Sequential(*blocks[6:9])
        self.fc = QLinear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def build(net: str, channels: int, size: int, classes: int) -> nn.Module:
    cls = {"lenet5": LeNet5, "vgg": VGGSmall, "resnet20": ResNet20}[net]
    return cls(channels, size, classes)
