"""zeronn: neural networks from zero, in NumPy.

The seed lesson (``zeronn.classic``) kept exact, and a general MLP engine grown from it.
"""

import importlib
from typing import Any

from zeronn import datasets, layers, optim, text
from zeronn._version import __version__
from zeronn.activations import ACTIVATIONS, get_activation, register_activation
from zeronn.activations import Activation as ActivationFunction
from zeronn.classic import mse_loss, relu, relu_deriv
from zeronn.gradcheck import GradCheckReport, check_gradients
from zeronn.history import Callback, EarlyStopping, History, TrainingInterrupted
from zeronn.initializers import INITIALIZERS
from zeronn.layers import (
    GRU,
    LSTM,
    RNN,
    Activation,
    AvgPool2D,
    BatchNorm,
    Composite,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Layer,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    PositionalEmbedding,
    Residual,
    TiedDense,
)
from zeronn.losses import LOSSES, Loss, get_loss, register_loss
from zeronn.models import MLP, Sequential, gpt
from zeronn.network import Network
from zeronn.onnx_export import export_onnx
from zeronn.persistence import load, save
from zeronn.trace import Trace, trace
from zeronn.training import Trainer, fit


def __getattr__(name: str) -> Any:
    # zeronn.plotting is imported on first use: matplotlib is an optional extra.
    if name == "plotting":
        return importlib.import_module("zeronn.plotting")
    raise AttributeError(f"module 'zeronn' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "GRU",
    "INITIALIZERS",
    "LOSSES",
    "LSTM",
    "MLP",
    "RNN",
    "Activation",
    "ActivationFunction",
    "AvgPool2D",
    "BatchNorm",
    "Callback",
    "Composite",
    "Conv2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "GradCheckReport",
    "History",
    "Layer",
    "LayerNorm",
    "Loss",
    "MaxPool2D",
    "MultiHeadAttention",
    "Network",
    "PositionalEmbedding",
    "Residual",
    "Sequential",
    "TiedDense",
    "Trace",
    "Trainer",
    "TrainingInterrupted",
    "__version__",
    "check_gradients",
    "datasets",
    "export_onnx",
    "fit",
    "get_activation",
    "get_loss",
    "gpt",
    "layers",
    "load",
    "mse_loss",
    "optim",
    "plotting",
    "register_activation",
    "register_loss",
    "relu",
    "relu_deriv",
    "save",
    "text",
    "trace",
]
