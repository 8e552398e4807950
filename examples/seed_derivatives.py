"""The seed's examples: a derivative, a gradient, and the loop that follows them downhill."""

import descend as ds

# y = 5x^2: the derivative 10x is 10 at x = 1.
print("d/dx 5x^2 at x=1:", float(ds.derivative(lambda x: 5 * x**2)(1.0)))

# y = 2x^2 + 6z^2 + 7m^3: the gradient (4x, 12z, 21m^2) is (4, 12, 21) at (1, 1, 1).
expression = ds.parse("2*x**2 + 6*z**2 + 7*m**3")
print("partial derivatives:", expression.derivatives)
gradient = ds.gradient(lambda x, z, m: 2 * x**2 + 6 * z**2 + 7 * m**3)(1.0, 1.0, 1.0)
print("gradient at (1, 1, 1):", [float(g) for g in gradient])

# Take a point, compute the derivative, step against it, until it is (nearly) zero,
# or until the derivative changes sign: then the minimum lies in between.
result = ds.minimize(lambda x: (x - 3.0) ** 2, x0=0.0, optimizer=ds.optim.gd(lr=0.9), refine=True)
print(f"minimum at x = {float(result.x):.6f}: {result.reason}")
