"""Train a classifier by mini-batch gradient descent, save it, load it, predict."""

import descend as ds

data = ds.data.load_dataset("breast_cancer")
result = ds.fit(
    "logistic", data, optimizer="adam", lr=1e-2, batch_size=32, epochs=20,
    standardize=True, validation_split=0.2, patience=5, verbose=0,
)  # fmt: skip
print(result.reason)
print("validation accuracy per epoch:", result.history["val_accuracy"].round(3))

ds.save("breast_cancer.ckpt", result)
restored = ds.load("breast_cancer.ckpt")
labels = [data.classes[code] for code in data.y]
print("first predictions:", restored.predict(data.X[:5]), "true:", labels[:5])
print("accuracy on all data:", round(restored.score(data.X, labels), 4))
