"""scikit-learn's own estimator checks, for both drop-ins: default settings and a small,
fast configuration. No check is marked as an expected failure."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastnn.sklearn import MLPClassifier, MLPRegressor

FAST = dict(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=0.01, random_state=0)


@parametrize_with_checks([MLPClassifier(), MLPRegressor(), MLPClassifier(**FAST), MLPRegressor(**FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
