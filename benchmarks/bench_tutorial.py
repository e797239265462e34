"""The tutorial's own script, unchanged but for its import line: the drop-in promise.

    nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy')
    trainer = Trainer(nn, 'categorical_crossentropy')
    trainer.train(X_train, y_train, X_test, y_test, epochs, 0.1)

Sigmoid hidden layer, softmax output, full-batch gradient descent, standard-normal
weights from NumPy's global state, float64, the test loss evaluated after every epoch.
"""
import timeit

import numpy as np

from .common import DTYPES, IMPLEMENTATIONS, QUICK, classes, digits, fix_threads

EPOCHS = 100  # timed; the tutorial itself runs 1000 (see track_tutorial_test_accuracy)
TUTORIAL_EPOCHS = 100 if QUICK else 1000


def tutorial_script(NeuralNetwork, Trainer, X_train, y_train, X_test, y_test, epochs):
    np.random.seed(0)
    nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy')
    trainer = Trainer(nn, 'categorical_crossentropy')
    trainer.train(X_train, y_train, X_test, y_test, epochs, 0.1)
    return nn


class TutorialScript:
    params = IMPLEMENTATIONS
    param_names = ["implementation"]
    timer = timeit.default_timer
    timeout = 300  # the reference's 1000 epochs in track_tutorial_test_accuracy

    def setup(self, implementation):
        fix_threads()
        self.classes = classes(implementation)
        self.data = digits("float64")[:4]
        tutorial_script(*self.classes, *self.data, 1)  # warm-up

    def time_tutorial_script(self, implementation):
        """100 epochs of the tutorial's training, network construction included."""
        tutorial_script(*self.classes, *self.data, EPOCHS)

    def track_tutorial_test_accuracy(self, implementation):
        """Test accuracy after the tutorial's 1000 epochs (100 in the quick profile)."""
        nn = tutorial_script(*self.classes, *self.data, TUTORIAL_EPOCHS)
        X_test, Y_test = self.data[2:]
        return float(np.mean(np.argmax(nn.forward(X_test), axis=1) == np.argmax(Y_test, axis=1)))

    track_tutorial_test_accuracy.unit = "accuracy"


class OneEpochCalls:
    """The loop of ``fastnn demo`` (and of scripts that print or plot between epochs): one
    epoch per ``train`` call, minibatch Adam on digits with integer labels, the test set
    evaluated after each; what a call keeps for the next one counts here."""

    params = (IMPLEMENTATIONS, DTYPES)
    param_names = ["implementation", "dtype"]
    timer = timeit.default_timer

    def setup(self, implementation, dtype):
        fix_threads()
        X_train, Y_train, X_test, Y_test = digits(dtype)[:4]
        self.data = (X_train, np.argmax(Y_train, axis=1), X_test, np.argmax(Y_test, axis=1))
        NeuralNetwork, Trainer = classes(implementation)
        model = NeuralNetwork(64, 64, 10, "categorical_crossentropy", activation="relu", init="he", dtype=dtype, seed=0)
        self.trainer = Trainer(model, "categorical_crossentropy")
        self.time_one_epoch_call(implementation, dtype)  # warm-up

    def time_one_epoch_call(self, implementation, dtype):
        """One call of one epoch: 45 minibatches of 32 rows, then the test set's loss."""
        self.trainer.train(*self.data, 1, 1e-3, batch_size=32, optimizer="adam")
