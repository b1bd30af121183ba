"""Exceptions raised by fastnn, and what to install where an optional extra is missing."""

# Each extra's plain requirement: "fastnn" on the package index is another project
# (from fastnn's source tree, pip install ".[plot]" etc. installs the same).
INSTALL = {"plot": "pip install matplotlib", "sklearn": "pip install scikit-learn",
           "dask": 'pip install "dask[distributed]"'}


class DivergenceError(ArithmeticError):
    """Training produced a non-finite loss or parameter.

    The weights and biases hold the values from the end of the last epoch whose
    loss and parameters were finite. Attributes:

    * ``epoch``: the first epoch (0-based) whose loss or parameters were not finite;
    * ``last_loss``: the last finite epoch loss, or None if epoch 0 failed;
    * ``history``: float64 array of the finite epoch losses, ``history[:epoch]``;
    * ``val_history``: the validation losses of those epochs (None without validation).
    """

    def __init__(self, epoch, last_loss, history, lr, val_history=None):
        self.epoch = epoch
        self.last_loss = last_loss
        self.history = history
        self.val_history = val_history
        last = ("no epoch finished with finite values" if last_loss is None
                else f"the last finite loss was {last_loss!r} at epoch {epoch - 1}")
        super().__init__(
            f"training diverged at epoch {epoch}: the loss or a parameter became "
            f"non-finite ({last}); the weights hold the end of the last finite epoch. "
            f"Try a smaller lr than {lr!r}, or pass check_finite=False for NumPy's behaviour.")

    @classmethod
    def of_networks(cls, diverged, history):
        """train_many's error: ``diverged`` maps each network that diverged to its first
        non-finite epoch; ``history`` (K, epochs) holds NaN from there."""
        networks = sorted(diverged)
        error = cls.__new__(cls)
        ArithmeticError.__init__(error, (
            f"training diverged for network{'s' if len(networks) > 1 else ''} "
            f"{', '.join(str(k) for k in networks)} (at epoch "
            f"{', '.join(str(diverged[k]) for k in networks)}): a loss or a parameter became "
            f"non-finite; every network holds the end of its last finite epoch. Try a smaller "
            f"lr for those, or on_divergence='freeze' to train the others on."))
        error.networks, error.epochs = networks, [diverged[k] for k in networks]
        error.epoch, error.last_loss, error.history, error.val_history = (
            min(error.epochs), None, history, None)
        return error
