"""zeronn.classic keeps the seed notebook exactly: names, shapes, arithmetic, printed lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import zeronn
from zeronn import classic

SEED_FILE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_8fd7bd2958beb408.txt"


def test_run_seed_prints_the_ten_lines(capsys, seed_lines):
    classic.run_seed()
    assert capsys.readouterr().out.splitlines() == seed_lines


def test_seed_main_block_against_the_module(capsys, seed_lines):
    """The notebook's own __main__ cell, run with the module's names, prints its ten lines."""
    main_cell = '''
np.random.seed(0)
X = np.random.randn(100, 2)
y = np.dot(X, np.array([[2], [-3]])) + 1 + 0.1 * np.random.randn(100, 1)
nn = NN(input_size=2, hidden_size=5, output_size=1)
epochs = 1000
learning_rate = 0.001
for epoch in range(epochs):
    y_pred = nn.forward(X)
    loss = mse_loss(y, y_pred)
    nn.backward(X, y, y_pred, learning_rate)
    if epoch % 100 == 0:
        print(f"Epoch {epoch}, Loss: {loss:.4f}")
'''
    exec(main_cell, {"np": np, "NN": classic.NN, "mse_loss": classic.mse_loss})
    assert capsys.readouterr().out.splitlines() == seed_lines


def test_seed_file_lines_match_if_present(seed_lines):
    if SEED_FILE.exists():
        text = SEED_FILE.read_text(encoding="utf-8")
        assert re.findall(r"^Epoch \d+, Loss: [\d.]+$", text, flags=re.M) == seed_lines


def test_python_dash_m_prints_the_lines(seed_lines):
    out = subprocess.run([sys.executable, "-m", "zeronn.classic"], capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines() == seed_lines


def test_functions_and_shapes():
    x = np.array([[-1.0, 0.0, 2.5]])
    np.testing.assert_array_equal(classic.relu(x), [[0.0, 0.0, 2.5]])
    np.testing.assert_array_equal(classic.relu_deriv(x), [[0, 0, 1]])  # 0 at the kink
    assert classic.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 4.0])) == 2.5
    np.random.seed(3)
    nn = classic.NN(input_size=3, hidden_size=4, output_size=2)
    assert (nn.W1.shape, nn.b1.shape, nn.W2.shape, nn.b2.shape) == ((3, 4), (1, 4), (4, 2), (1, 2))
    assert not nn.b1.any() and not nn.b2.any()
    out = nn.forward(np.ones((5, 3)))
    assert out.shape == (5, 2) and nn.z1.shape == (5, 4) and nn.a1.shape == (5, 4)
    assert out is nn.z2
    assert repr(nn) == "NN(input_size=3, hidden_size=4, output_size=2)"


def test_backward_uses_summed_gradients(seed_problem):
    X, y, nn = seed_problem
    W1, b1, W2, b2 = (p.copy() for p in (nn.W1, nn.b1, nn.W2, nn.b2))
    y_pred = nn.forward(X)
    err = y_pred - y
    dW2 = nn.a1.T @ err
    eh = (err @ W2.T) * (nn.z1 > 0)
    nn.backward(X, y, y_pred, 0.5)
    np.testing.assert_array_equal(nn.W2, W2 - 0.5 * dW2)
    np.testing.assert_array_equal(nn.b2, b2 - 0.5 * err.sum(0, keepdims=True))
    np.testing.assert_array_equal(nn.W1, W1 - 0.5 * (X.T @ eh))
    np.testing.assert_array_equal(nn.b1, b1 - 0.5 * eh.sum(0, keepdims=True))


def test_functions_exported_from_package():
    assert zeronn.relu is classic.relu
    assert zeronn.relu_deriv is classic.relu_deriv
    assert zeronn.mse_loss is classic.mse_loss
