"""Writes model files with zeronn 0.1 and, beside each, the inputs and outputs to check.

Run once with zeronn 0.1.0 (commit 21081a1) from the repository root; kept to show how
the files were made. Later versions must load them and predict the same
(tests/test_persistence.py, ``test_v01_*``), up to rounding.
"""

import numpy as np
import pandas as pd

import zeronn as zn
from zeronn.sklearn import MLPClassifier, MLPRegressor
from zeronn.tabular import TabularModel

OUT = "tests/data/v0_1/"
rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3))
y = (X @ [[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(40, 1))
# A plain MLP (float64) fitted with Adam: weights, optimizer state, history, rng.
net = zn.MLP([3, 6, 4, 1], activation=["relu", "tanh"], seed=1)
net.fit(X, y, optimizer=zn.optim.Adam(lr=0.01), epochs=5, batch_size=8,
        validation_split=0.2, seed=3)
zn.save(net, OUT + "mlp_f64.zeronn")
# A float32 softmax classifier trained with SGD and momentum.
lab = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
net32 = zn.MLP([3, 5, 3], activation="sigmoid", output_activation="softmax",
               dtype="float32", seed=2)
net32.fit(X, np.eye(3)[lab], loss="categorical_crossentropy",
          optimizer=zn.optim.SGD(lr=0.1, momentum=0.9), epochs=4)
zn.save(net32, OUT + "mlp_softmax_f32.zeronn")
# The scikit-learn estimators.
reg = MLPRegressor(hidden_layer_sizes=(7,), max_iter=20, random_state=0).fit(X, y.ravel())
zn.save(reg, OUT + "sklearn_regressor.zeronn")
clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0)
clf.fit(X, np.array(["a", "b", "c"])[lab])
zn.save(clf, OUT + "sklearn_classifier.zeronn")
# The CLI's models.
df = pd.DataFrame(X, columns=["x1", "x2", "x3"])
df["y"] = y.ravel()
df["label"] = np.array(["no", "yes"])[(lab > 0).astype(int)]
features = ["x1", "x2", "x3"]
tmr = TabularModel(hidden=(5,), epochs=10, seed=0)
tmr.fit(df, "y", features=features)
zn.save(tmr, OUT + "tabular_regression.zeronn")
tmc = TabularModel(hidden=(5,), epochs=10, seed=0)
tmc.fit(df, "label", features=features)
zn.save(tmc, OUT + "tabular_classification.zeronn")

np.save(OUT + "X.npy", X)
np.save(OUT + "mlp_f64_pred.npy", net.predict(X))
np.save(OUT + "mlp_softmax_f32_pred.npy", net32.predict(X))
np.save(OUT + "sklearn_regressor_pred.npy", reg.predict(X))
np.save(OUT + "sklearn_classifier_proba.npy", clf.predict_proba(X))
np.save(OUT + "tabular_regression_pred.npy", np.asarray(tmr.predict(df[features]), dtype=float))
np.save(OUT + "tabular_classification_pred.npy", np.asarray(tmc.predict(df[features])).astype(str))
df.to_csv(OUT + "table.csv", index=False)
