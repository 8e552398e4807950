"""Race four optimizers on the Rosenbrock function and draw their paths."""

import descend as ds

race = ds.compare(
    "rosenbrock",
    ["gd", ("momentum", {"lr": 1e-3}), ("adam", {"lr": 0.02}), "lbfgs"],
    x0=(-1.5, 2.0),
)
print(race.table())
ds.plot.save(ds.plot.race(race), "race.png")
print("fewest iterations to tolerance:", race.best)
