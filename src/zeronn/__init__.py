"""zeronn: neural networks from zero, in NumPy.

The seed lesson (``zeronn.classic``) kept exact, and a general MLP engine grown from it.
"""

import importlib
from typing import Any

from zeronn import optim
from zeronn._version import __version__
from zeronn.activations import ACTIVATIONS, Activation, get_activation, register_activation
from zeronn.classic import mse_loss, relu, relu_deriv
from zeronn.gradcheck import GradCheckReport, check_gradients
from zeronn.initializers import INITIALIZERS
from zeronn.layers import Dense
from zeronn.losses import LOSSES, Loss, get_loss, register_loss
from zeronn.network import MLP
from zeronn.onnx_export import export_onnx
from zeronn.persistence import load, save
from zeronn.trace import Trace, trace
from zeronn.training import EarlyStopping, History, TrainingInterrupted, fit


def __getattr__(name: str) -> Any:
    # zeronn.plotting is imported on first use: matplotlib is an optional extra.
    if name == "plotting":
        return importlib.import_module("zeronn.plotting")
    raise AttributeError(f"module 'zeronn' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "MLP",
    "Activation",
    "Dense",
    "EarlyStopping",
    "GradCheckReport",
    "History",
    "Loss",
    "Trace",
    "TrainingInterrupted",
    "__version__",
    "check_gradients",
    "export_onnx",
    "fit",
    "get_activation",
    "get_loss",
    "load",
    "mse_loss",
    "optim",
    "plotting",
    "register_activation",
    "register_loss",
    "relu",
    "relu_deriv",
    "save",
    "trace",
]
