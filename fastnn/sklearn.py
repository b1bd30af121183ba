"""scikit-learn estimators trained by fastnn: ``MLPRegressor`` and ``MLPClassifier``.

    from fastnn.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)

Drop-ins for ``sklearn.neural_network.MLPRegressor`` / ``MLPClassifier`` with the
stochastic solvers: the same constructor (names, defaults, order), the same
fitted attributes and methods, and the same numbers. With the same parameters,
data and ``random_state``, ``fit`` and ``partial_fit`` give scikit-learn's own
``loss_curve_``, ``coefs_`` and ``intercepts_`` up to rounding (float64: rtol
1e-9 for ``solver="sgd"``, 1e-6 for ``"adam"``; measured in
tests/test_sklearn.py), and the same ``n_iter_``, ``validation_scores_`` and
``best_loss_``: the same initialisation (Glorot uniform, factor 2 for logistic)
and random-state consumption, batches, cumulative shuffles, L2 penalty
(alpha / batch rows, weights only), update rules (``fastnn.optim.SklearnRule``),
loss reporting, stopping rule, early-stopping split, score and best-weights
restore. Only the epochs themselves run in fastnn's compiled loop; the
per-epoch bookkeeping (stopping rule, validation score) is this module's
Python, called back after every epoch.

Supported (anything else raises ``ValueError`` at ``fit``, naming what is):
``solver`` "sgd" or "adam"; ``learning_rate="constant"``; ``activation``
identity, logistic, tanh or relu; ``loss="squared_error"`` (regressor);
``power_t`` and ``max_fun`` at their defaults (they only act with
``learning_rate="invscaling"`` and ``solver="lbfgs"``).

Differences from scikit-learn, all at the level of rounding unless stated:

* the reported cross-entropy uses the stable form (log-sum-exp; max(z, 0) - z y +
  log1p(exp(-|z|))) where scikit-learn clips probabilities to [eps, 1 - eps]. The
  two agree to ~1e-16 per row unless a logit passes ~36 (float64) or ~16
  (float32), where scikit-learn's reported loss saturates; gradients are the same;
* float32 data trains in float32 throughout. scikit-learn keeps float32 too but
  promotes some steps to float64 (a float64 regression target, Adam's step
  size); the numbers agree to float32 rounding, not to 1e-9;
* sparse X is densified (fastnn's kernels are dense);
* ``sample_weight`` is not supported (``fit(X, y)`` only);
* a diverging fit (non-finite loss) stops at once with scikit-learn's error
  message instead of running on with NaN weights until ``max_iter``.
"""

import numbers
import warnings
from itertools import pairwise

import numpy as np

from ._errors import INSTALL, DivergenceError

try:
    import sklearn  # noqa: F401  (here to name the missing extra)
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(f"fastnn.sklearn needs scikit-learn, an optional extra of fastnn: "
                      f"{INSTALL['sklearn']}", name="sklearn") from _exc

import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # scikit-learn < 1.6
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

from ._driver import Hooks, check_start
from ._driver import fit as _fit_epochs
from ._driver import predict as _fastnn_predict
from ._state import Run, Setup
from ._validate import check_network
from .kernels import network as _KN
from .optim import SklearnRule

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn's
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
#: out_activation_ -> (fastnn loss, reported-loss scale, fastnn.predict output)
OUTPUTS = {"identity": ("mse", 0.5, "identity"),        # sklearn: mean((y - p)^2) / 2
           "softmax": ("softmax_ce", 1.0, "softmax"),   # log_loss
           "logistic": ("sigmoid_bce", 1.0, "sigmoid")}  # binary_log_loss
SOLVERS = ("sgd", "adam")
SPARSE_FORMATS = ["csr", "csc"]


def _supported(name, value, supported, why):
    raise ValueError(f"fastnn.sklearn does not support {name}={value!r}: {why}; "
                     f"supported: {supported}")


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _number(est, name, kind, low=None, high=None, low_open=False, high_open=False):
    """Check one numeric constructor parameter as scikit-learn constrains it."""
    value = getattr(est, name)
    integral = kind is numbers.Integral
    if _is_bool(value) or not isinstance(value, kind):
        raise TypeError(f"The {name!r} parameter of {type(est).__name__} must be "
                        f"{'an int' if integral else 'a real number'}, "
                        f"found {value!r} of type {type(value).__name__}")
    bad = not np.isfinite(value) if not integral else False
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        rule = " and ".join(p for p in (lo, hi) if p)
        raise ValueError(f"The {name!r} parameter of {type(est).__name__} must be "
                         f"{rule}, found {value!r}")
    return value


class _BaseMLP(BaseEstimator):
    """What MLPRegressor and MLPClassifier share: parameters, training, prediction."""

    # ----------------------------------------------------------------- parameters

    def _check_params(self):
        """Validate the constructor parameters (at fit, as scikit-learn does); returns
        the hidden layer sizes as a list of ints."""
        name = type(self).__name__
        sk = f"sklearn.neural_network.{name}"
        if not isinstance(self.solver, str) or self.solver not in SOLVERS:
            _supported("solver", self.solver, "'sgd' or 'adam'",
                       f"fastnn trains with the stochastic solvers only (use {sk} for "
                       f"'lbfgs')" if self.solver == "lbfgs" else "unknown solver")
        if self.learning_rate != "constant":
            _supported("learning_rate", self.learning_rate, "'constant'",
                       "fastnn keeps the learning rate constant" if self.learning_rate in (
                           "invscaling", "adaptive") else "unknown schedule")
        if self.power_t != 0.5:
            _supported("power_t", self.power_t, "the default 0.5",
                       "power_t only acts with learning_rate='invscaling', which fastnn "
                       "does not support")
        if self.max_fun != 15000:
            _supported("max_fun", self.max_fun, "the default 15000",
                       "max_fun only acts with solver='lbfgs', which fastnn does not support")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            _supported("activation", self.activation,
                       "'identity', 'logistic', 'tanh' or 'relu'", "unknown activation")
        if not is_classifier(self) and self.loss != "squared_error":
            _supported("loss", self.loss, "'squared_error'",
                       f"use {sk} for 'poisson'" if self.loss == "poisson" else "unknown loss")
        _number(self, "alpha", numbers.Real, 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            if not isinstance(self.batch_size, numbers.Integral) or _is_bool(self.batch_size):
                raise TypeError(f"The 'batch_size' parameter of {name} must be 'auto' or an "
                                f"int >= 1, found {self.batch_size!r}")
            _number(self, "batch_size", numbers.Integral, 1)
        _number(self, "learning_rate_init", numbers.Real, 0, low_open=True)
        _number(self, "max_iter", numbers.Integral, 1)
        _number(self, "tol", numbers.Real, 0)
        _number(self, "momentum", numbers.Real, 0, 1)
        _number(self, "validation_fraction", numbers.Real, 0, 1, high_open=True)
        _number(self, "beta_1", numbers.Real, 0, 1, high_open=True)
        _number(self, "beta_2", numbers.Real, 0, 1, high_open=True)
        _number(self, "epsilon", numbers.Real, 0, low_open=True)
        if not (self.n_iter_no_change == np.inf and not _is_bool(self.n_iter_no_change)):
            _number(self, "n_iter_no_change", numbers.Integral, 1)
        for flag in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not _is_bool(getattr(self, flag)):
                raise TypeError(f"The {flag!r} parameter of {name} must be True or False, "
                                f"found {getattr(self, flag)!r}")
        if not (_is_bool(self.verbose) or isinstance(self.verbose, numbers.Integral)):
            raise TypeError(f"The 'verbose' parameter of {name} must be a bool or an int, "
                            f"found {self.verbose!r}")
        hidden = self.hidden_layer_sizes
        if not hasattr(hidden, "__iter__"):
            hidden = [hidden]
        elif not hasattr(hidden, "__len__"):  # an iterator would be used up by one fit
            raise TypeError(f"The 'hidden_layer_sizes' parameter of {name} must be an int or "
                            f"a sequence of ints, found an iterator ({type(hidden).__name__})")
        hidden = list(hidden)
        if not all(isinstance(h, numbers.Integral) and not _is_bool(h) for h in hidden):
            raise TypeError(f"The 'hidden_layer_sizes' parameter of {name} must be an int or "
                            f"a sequence of ints, found {self.hidden_layer_sizes!r}")
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        return [int(h) for h in hidden]

    # ----------------------------------------------------------------- fitting

    def _fit(self, X, y, incremental=False):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sp.issparse(X):
            X = X.toarray()
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [X.shape[1]] + hidden + [y.shape[1]]
        if not first_pass:
            shapes = [w.shape for w in self.coefs_]
            if shapes != list(pairwise(layer_units)):
                raise ValueError(f"{type(self).__name__} holds coefs_ of shapes {shapes}, but "
                                 f"this call needs {list(pairwise(layer_units))} (layers "
                                 f"{layer_units}); set warm_start=False to start anew")
        self.n_outputs_ = y.shape[1]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        self._fit_stochastic(X, y, incremental)
        return self

    def _initialize(self, y, layer_units, dtype):
        """scikit-learn's _initialize: attributes, then the parameters in its draw order."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        self.coefs_, self.intercepts_ = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in pairwise(layer_units):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            self.coefs_.append(np.ascontiguousarray(coef, dtype=dtype))
            self.intercepts_.append(np.ascontiguousarray(intercept, dtype=dtype))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        self._params = None  # new arrays: the next fit trains these
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _trained_arrays(self):
        """coefs_ and intercepts_ as the arrays the optimizer trains in place: writeable,
        C-contiguous, in one dtype (a user's replacement is copied into them)."""
        held = getattr(self, "_params", None)
        current = list(self.coefs_) + list(self.intercepts_)
        if held is None or len(held) != len(current) or any(
                h.shape != np.shape(c) for h, c in zip(held, current)):
            dtype = np.result_type(*current)
            dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
            held = [c if isinstance(c, np.ndarray) and c.dtype == dtype and c.flags.c_contiguous
                    and c.flags.writeable else np.array(c, dtype=dtype, order="C")
                    for c in current]
        else:  # arrays the user put in their place: copied in, the optimizer's state kept
            for h, c in zip(held, current):
                if h is not c:
                    np.copyto(h, c)
        n = len(self.coefs_)
        self.coefs_, self.intercepts_ = held[:n], held[n:]
        self._params = held
        return held

    def _fit_stochastic(self, X, y, incremental):
        params = self._trained_arrays()
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = SklearnRule(
                self.solver, self.learning_rate_init, momentum=self.momentum,
                nesterov=self.nesterovs_momentum, betas=(self.beta_1, self.beta_2),
                eps=self.epsilon)
        self._optimizer.alpha = float(self.alpha)  # read live, like scikit-learn's _backprop

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            if self.validation_scores_ is None:  # scikit-learn fails here (warm start)
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            X_train, X_val, y_train, y_val = train_test_split(
                X, y, random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, X_val, y_val = X, y, None, None
            if self.best_loss_ is None:  # scikit-learn fails here (warm start)
                self.best_loss_ = np.inf

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than "
                              "sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        loss, scale, _ = OUTPUTS[self.out_activation_]
        net = check_network(X_train, y_train, params[:len(self.coefs_)],
                            params[len(self.coefs_):], ACTIVATIONS[self.activation], loss)
        setup = Setup(batch_size=batch_size, in_order=not self.shuffle,
                      reduce=_KN.REDUCE_ROWS, loss_scale=scale, l2_report=0.5 * float(self.alpha))
        run = Run(net, self._optimizer, setup)
        check_start(run, "", ("coefs_", "intercepts_"))  # as fit would, in this API's names
        orders = self._orders(n_samples) if self.shuffle else None
        epochs = 1 if incremental else int(self.max_iter)
        self.n_iter_ = 0
        callback = self._epoch_callback(n_samples, X_val, y_val, incremental)
        try:
            _fit_epochs(run, epochs, orders, Hooks(epochs, None, callback, 1, False))
        except DivergenceError as exc:
            raise ValueError("Solver produced non-finite parameter weights. The input data may"
                             " contain large values and need to be preprocessed.") from exc
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            # scikit-learn restores the best weights by coefs_ = _best_coefs: from then on
            # the two are the same arrays, trained on by a warm-started fit, whose end
            # result is its last epoch's weights unless its validation score improves
            for live, best in zip(params, self._best_coefs + self._best_intercepts):
                if best is not live:
                    np.copyto(live, best)
            self._best_coefs, self._best_intercepts = self.coefs_, self.intercepts_

    def _orders(self, n_samples):
        """Row orders as scikit-learn draws them: ``sample_idx = shuffle(sample_idx,
        random_state=self._random_state)`` every epoch, cumulatively. That call is
        ``sample_idx[p]`` with p = arange(n) shuffled in place by the random state
        (sklearn.utils.resample with replace=False), written out here because
        shuffle's argument validation costs ~1 ms an epoch; the tests compare the
        two."""
        state = [np.arange(n_samples, dtype=int)]

        def orders(count, n_rows):
            out = np.empty((count, n_rows), np.int64)
            for i in range(count):
                perm = np.arange(n_rows)
                self._random_state.shuffle(perm)
                state[0] = state[0][perm]
                out[i] = state[0]
            return out
        return orders

    def _epoch_callback(self, n_samples, X_val, y_val, incremental):
        """scikit-learn's bookkeeping after each epoch; False stops training."""
        def callback(epoch, loss):
            loss = np.float64(loss)  # as scikit-learn's
            self.n_iter_ += 1
            self.loss_ = loss
            self.t_ += n_samples
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            self._update_no_improvement_count(X_val, y_val)
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    what = "Validation score" if X_val is not None else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol:f} for "
                          f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                return False
            if incremental:
                return False
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                              "reached and the optimization hasn't converged yet.",
                              ConvergenceWarning)
            return True
        return callback

    def _update_no_improvement_count(self, X_val, y_val):
        if X_val is not None:
            score = self._validation_score(X_val, y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])

    def _validation_score(self, X, y):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred)

    # ----------------------------------------------------------------- prediction

    def _forward(self, X, check_input=True):
        """The output layer after out_activation_ (fastnn.predict)."""
        if check_input:
            X = _validate_data(self, X, accept_sparse=SPARSE_FORMATS, reset=False)
        if sp.issparse(X):
            X = X.toarray()
        coefs, intercepts = self.coefs_, self.intercepts_
        dtype = np.result_type(X.dtype, coefs[0].dtype)
        if dtype != coefs[0].dtype:  # float64 X on a float32 model: float64, as sklearn
            coefs = [c.astype(dtype) for c in coefs]
            intercepts = [b.astype(dtype) for b in intercepts]
        return _fastnn_predict(X, coefs, intercepts, activation=ACTIVATIONS[self.activation],
                               output=OUTPUTS[self.out_activation_][2])

    def fit(self, X, y):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data (sparse input is densified).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).

        Returns
        -------
        self : object
            The trained model.
        """
        return self._fit(X, y, incremental=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"X_types": ["2darray", "sparse"]}


_PARAMS_DOC = """
    Parameters (those of scikit-learn's; see its documentation)
    ----------
{loss}    hidden_layer_sizes : array-like of int, default=(100,)
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
    solver : {'sgd', 'adam'}, default='adam' ('lbfgs' is not supported)
    alpha : float, default=0.0001
        L2 penalty: alpha / batch rows times the weights (not the intercepts).
    batch_size : int or 'auto', default='auto' (min(200, n_samples))
    learning_rate : 'constant', default='constant' (the only schedule supported)
    learning_rate_init : float, default=0.001
    power_t : 0.5, default=0.5 (only its default: it acts with 'invscaling')
    max_iter : int, default=200
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
    tol : float, default=1e-4
    verbose : bool, default=False
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
    validation_fraction : float, default=0.1
    beta_1 : float, default=0.9
    beta_2 : float, default=0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
    max_fun : 15000, default=15000 (only its default: it acts with 'lbfgs')

    Attributes
    ----------
    As scikit-learn's: coefs_, intercepts_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, n_iter_, t_, n_layers_,
    n_outputs_, out_activation_, n_features_in_, feature_names_in_{extra}.
    coefs_ and intercepts_ are the arrays fastnn trains in place.
"""


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor`` "
               "(squared error, solvers 'sgd' and 'adam'), trained by fastnn.\n"
               + _PARAMS_DOC.replace("{extra}", "").replace(
                   "{loss}", "    loss : 'squared_error', default='squared_error'\n"))

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=SPARSE_FORMATS, multi_output=True,
                              y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @staticmethod
    def _score_function(y, y_pred):
        return r2_score(y, y_pred)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def predict(self, X):
        """Predict using the multi-layer perceptron model: (n_samples,) or
        (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def partial_fit(self, X, y):
        """Update the model with a single epoch over the given data."""
        return self._fit(X, y, incremental=True)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier`` "
               "(log-loss; softmax for multiclass, logistic for binary and multilabel; "
               "solvers 'sgd' and 'adam'), trained by fastnn.\n"
               + _PARAMS_DOC.replace("{extra}", ", classes_").replace("{loss}", ""))

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=SPARSE_FORMATS, multi_output=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    @staticmethod
    def _score_function(y, y_pred):
        return accuracy_score(y, y_pred)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier: the class labels,
        (n_samples,) or (n_samples, n_classes) for multilabel."""
        check_is_fitted(self)
        return self._predict(X)

    def predict_proba(self, X):
        """Probability estimates, (n_samples, n_classes), in the order of classes_."""
        check_is_fitted(self)
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """The log of predict_proba."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def partial_fit(self, X, y, classes=None):
        """Update the model with a single epoch over the given data; ``classes`` (all
        the labels) is required on the first call."""
        self._check_params()  # before anything changes
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"X_types": ["2darray", "sparse"], "multilabel": True}
