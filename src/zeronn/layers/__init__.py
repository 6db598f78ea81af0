"""Layers, one file per kind: the unit a network is built from (see ``layers.base``).

``LAYERS`` maps each layer class's name to the class: the one table of the layers a model
file may name (a new layer file adds its class here, and model files can hold it).
"""

from zeronn.layers.attention import MultiHeadAttention
from zeronn.layers.base import Layer, Param
from zeronn.layers.composite import Composite, Residual
from zeronn.layers.conv import Conv2D
from zeronn.layers.dense import Activation, Dense
from zeronn.layers.dropout import Dropout
from zeronn.layers.embedding import Embedding, TiedDense
from zeronn.layers.normalization import BatchNorm, LayerNorm
from zeronn.layers.pooling import AvgPool2D, MaxPool2D
from zeronn.layers.positional import PositionalEmbedding
from zeronn.layers.recurrent import GRU, LSTM, RNN
from zeronn.layers.reshape import Flatten

LAYERS: dict[str, type[Layer]] = {cls.__name__: cls for cls in (
    Activation, AvgPool2D, BatchNorm, Composite, Conv2D, Dense, Dropout, Embedding, Flatten,
    GRU, LSTM, LayerNorm, MaxPool2D, MultiHeadAttention, PositionalEmbedding, RNN, Residual,
    TiedDense)}

__all__ = ["GRU", "LAYERS", "LSTM", "RNN", "Activation", "AvgPool2D", "BatchNorm", "Composite",
           "Conv2D", "Dense", "Dropout", "Embedding", "Flatten", "Layer", "LayerNorm",
           "MaxPool2D", "MultiHeadAttention", "Param", "PositionalEmbedding", "Residual",
           "TiedDense"]
