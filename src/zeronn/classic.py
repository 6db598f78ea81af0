"""The seed lesson, kept exactly: ReLU, MSE and a 2-layer network with summed gradients.

This module is the contract with the original notebook (``shared/seed``): the same
names, signatures, attributes and arithmetic, including the global ``np.random``
for initialisation. Running the seed's ``__main__`` block against it prints the
seed's ten lines exactly (``Epoch 0, Loss: 10.1670`` ... ``Epoch 900, Loss: 0.0092``).
The general engine lives in :mod:`zeronn.network`; this file stays a lesson.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["NN", "mse_loss", "relu", "relu_deriv", "run_seed", "seed_data"]


# 活性化関数とその微分 (activation and its derivative)
def relu(x: NDArray) -> NDArray:
    """ReLU: 入力が0以下なら0、0より大きいならそのまま (0 for x <= 0, else x)."""
    return np.maximum(0, x)


def relu_deriv(x: NDArray) -> NDArray:
    """ReLU の微分: 1 where x > 0, else 0 (so the derivative at 0 is 0)."""
    # xが0より大きい部分は1、そうでなければ0を返す
    return np.where(x > 0, 1, 0)


# 損失関数：平均二乗誤差 (MSE)
def mse_loss(y_true: NDArray, y_pred: NDArray) -> float:
    """Mean squared error, the mean of ``(y_true - y_pred) ** 2`` over all elements."""
    return np.mean((y_true - y_pred) ** 2)


class NN:
    """The seed's 2-layer network: ``z1 = X·W1 + b1``, ``a1 = relu(z1)``, ``z2 = a1·W2 + b2``.

    Shapes: ``W1`` (input_size, hidden_size), ``b1`` (1, hidden_size),
    ``W2`` (hidden_size, output_size), ``b2`` (1, output_size).
    Weights come from the global ``np.random.randn`` on purpose, as in the seed.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        # 重みの初期化（乱数）
        self.W1 = np.random.randn(input_size, hidden_size)
        self.b1 = np.zeros((1, hidden_size))
        self.W2 = np.random.randn(hidden_size, output_size)
        self.b2 = np.zeros((1, output_size))

    def __repr__(self) -> str:
        i, h = self.W1.shape
        return f"NN(input_size={i}, hidden_size={h}, output_size={self.W2.shape[1]})"

    def forward(self, X: NDArray) -> NDArray:
        """順伝播: X (batch, input_size) -> z2 (batch, output_size); caches z1, a1, z2."""
        # 1層目の線形結合とReLUによる活性化
        self.z1 = np.dot(X, self.W1) + self.b1
        self.a1 = relu(self.z1)
        # 2層目（出力層）の線形結合（今回は活性化関数なし）
        self.z2 = np.dot(self.a1, self.W2) + self.b2
        # 出力をそのまま返す（回帰の場合）
        return self.z2

    def backward(self, X: NDArray, y: NDArray, y_pred: NDArray, learning_rate: float) -> None:
        """逆伝播: summed gradients of the seed, then one gradient-descent step in place."""
        # 出力層の誤差
        error_output = y_pred - y  # (バッチサイズ, output_size)
        # 隠れ層から出力層への勾配
        dW2 = np.dot(self.a1.T, error_output)
        db2 = np.sum(error_output, axis=0, keepdims=True)

        # 隠れ層の誤差（ReLUの微分を乗算）
        error_hidden = np.dot(error_output, self.W2.T) * relu_deriv(self.z1)
        # 入力層から隠れ層への勾配
        dW1 = np.dot(X.T, error_hidden)
        db1 = np.sum(error_hidden, axis=0, keepdims=True)

        # パラメータの更新
        self.W2 -= learning_rate * dW2
        self.b2 -= learning_rate * db2
        self.W1 -= learning_rate * dW1
        self.b1 -= learning_rate * db1


def seed_data() -> tuple[NDArray, NDArray]:
    """The seed's dummy data after ``np.random.seed(0)``: X (100, 2), y = 2·x1 - 3·x2 + 1 + noise.

    Leaves the global generator where the seed leaves it, so ``NN(2, 5, 1)`` built
    right after gets the seed's initial weights.
    """
    np.random.seed(0)
    X = np.random.randn(100, 2)
    # 簡単な線形関係にノイズを加えたもの
    y = np.dot(X, np.array([[2], [-3]])) + 1 + 0.1 * np.random.randn(100, 1)
    return X, y


def run_seed(epochs: int = 1000, learning_rate: float = 0.001, every: int = 100) -> NN:
    """The seed's ``__main__`` block: prints ``Epoch k, Loss: ...`` every ``every`` epochs."""
    X, y = seed_data()
    # ネットワークの初期化
    nn = NN(input_size=2, hidden_size=5, output_size=1)
    # 学習ループ
    for epoch in range(epochs):
        y_pred = nn.forward(X)  # 順伝播
        loss = mse_loss(y, y_pred)  # 損失計算
        nn.backward(X, y, y_pred, learning_rate)  # 逆伝播
        if epoch % every == 0:
            print(f"Epoch {epoch}, Loss: {loss:.4f}")
    return nn


if __name__ == "__main__":
    run_seed()
