"""descend's estimators inside a scikit-learn pipeline and grid search."""

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from descend.sklearn import GDClassifier

X, y = load_breast_cancer(return_X_y=True)
pipeline = make_pipeline(StandardScaler(), GDClassifier(max_epochs=200, random_state=0))
search = GridSearchCV(
    pipeline,
    {"gdclassifier__learning_rate": [1e-3, 1e-2], "gdclassifier__batch_size": [16, 64]},
    cv=3,
)
search.fit(X, y)
print("best parameters:", search.best_params_)
print("best cross-validated accuracy:", round(search.best_score_, 4))
