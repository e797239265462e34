"""History: per-epoch metrics of a Trainer, and their plot."""
import math
import sys


class History:
    """Per-epoch metrics, one list per key, all of the same length.

    Keys: ``loss`` (the training loss, as ``Trainer.train_loss``), ``accuracy`` (for
    categorical cross-entropy and log_loss models), ``val_loss`` / ``val_accuracy``
    (with validation data), ``test_loss`` (with X_test), ``lr`` (the rate used) and
    ``time`` (wall seconds of the epoch, evaluation included). A key missing in some
    epochs (validation in one ``train`` call only) holds NaN there.

    ``history['loss']``, ``history.loss``, ``len(history)`` (epochs), ``history.epoch``
    (1-based epoch numbers), ``history.as_dict()``. After ``train``: ``stopped_epoch``
    and ``stop_reason`` when a callback stopped training (else None), ``interrupted``
    when Ctrl-C ended it, and ``interrupted_steps`` when a second Ctrl-C stopped an
    epoch part way: the steps of it that the weights hold (the epoch is not recorded).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.stopped_epoch = None
        self.stop_reason = None
        self.interrupted = False
        self.interrupted_steps = None

    def append(self, logs):
        """Record one epoch's metrics (a dict of floats)."""
        n = len(self.epoch)
        history = self.history
        for key, value in logs.items():
            values = history.get(key)
            if values is None:  # a new metric: NaN for the epochs before it (not a new list per call)
                values = history[key] = [math.nan] * n
            values.append(float(value))
        if len(history) > len(logs):
            for key, values in history.items():
                if key not in logs:
                    values.append(math.nan)
        self.epoch.append(n + 1)

    def truncate(self, n):
        """Keep the first n epochs."""
        del self.epoch[n:]
        for values in self.history.values():
            del values[n:]

    def __len__(self):
        return len(self.epoch)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __getattr__(self, key):
        history = self.__dict__.get("history", {})
        if key in history:
            return history[key]
        raise AttributeError(f"History has no {key!r}; recorded: {', '.join(history) or 'nothing yet'}.")

    def keys(self):
        return self.history.keys()

    def as_dict(self):
        return {key: list(values) for key, values in self.history.items()}

    def plot(self, path=None, *, ax=None):
        """Loss curves (and accuracy curves when recorded) with matplotlib; see ``plot_history``."""
        return plot_history(self, path, ax=ax)

    def __repr__(self):
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if k != "time") if self.epoch else ""
        return f"History({len(self)} epochs{': ' + last if last else ''})"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting a history needs matplotlib, which is an optional extra of fastnn: "
            "pip install 'fastnn[plot]' (or pip install matplotlib)."
        ) from None
    return plt


def plot_history(history, path=None, *, ax=None):
    """Draw loss (and accuracy) per epoch; returns the matplotlib Figure.

    history : History or dict of lists (e.g. ``History.as_dict()``).
    path : str, optional -- also save the figure there.
    ax : matplotlib Axes, optional -- draw the loss curves there (no accuracy panel).

    Raises ImportError naming the ``plot`` extra when matplotlib is not installed.
    """
    plt = _pyplot()
    data = history.history if isinstance(history, History) else dict(history)
    n = max((len(v) for v in data.values()), default=0)
    epochs = list(range(1, n + 1))
    panels = [("loss", [k for k in ("loss", "val_loss", "test_loss") if k in data])]
    accuracy = [k for k in ("accuracy", "val_accuracy") if k in data]
    if accuracy and ax is None:
        panels.append(("accuracy", accuracy))
    if ax is None:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    for a, (title, keys) in zip(axes, panels):
        for key in keys:
            a.plot(epochs, data[key], label=key, ls="--" if key.startswith(("val_", "test_")) else "-")
        a.set_xlabel("epoch")
        a.set_ylabel(title)
        a.legend()
    if path is not None:
        fig.tight_layout()
        fig.savefig(path)
    return fig


class Progress:
    """What ``Trainer.train(verbose=...)`` shows of the history as it grows: 1 a tqdm bar
    over the epochs with the latest metrics (stderr); 2 one line per epoch (stdout); 0 nothing."""

    def __init__(self, verbose, epochs):
        self.verbose, self.epochs, self.bar = verbose, epochs, None
        if verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, unit="epoch", desc="train", file=sys.stderr, leave=True)

    @staticmethod
    def _fmt(key, value):
        if key == "time":
            return f"{value:.3g}s"
        return f"{value:.4g}" if key == "lr" else f"{value:.6g}"

    def update(self, epoch, logs):
        if self.bar is not None:
            self.bar.set_postfix({k: self._fmt(k, v) for k, v in logs.items() if k != "time"}, refresh=False)
            self.bar.update(1)
        elif self.verbose >= 2:
            line = " - ".join([f"epoch {epoch}/{self.epochs}"]
                              + [f"{k}: {self._fmt(k, v)}" if k != "time" else self._fmt(k, v) for k, v in logs.items()])
            print(line, flush=True)

    def close(self, message=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if message and self.verbose:
            print(message, file=sys.stderr if self.verbose == 1 else sys.stdout, flush=True)
