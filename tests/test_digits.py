"""The tutorial's digits task, end to end (issue 2: "Tests must show")."""
import numpy as np

from fastnn import NeuralNetwork, Trainer


def accuracy(nn, X_test, y_test):
    return np.mean(np.argmax(nn.forward(X_test), axis=1) == np.argmax(y_test, axis=1))


def test_tutorial_script_unchanged(digits, one_blas_thread):
    # The tutorial's script, only the import changed (and a seed for determinism):
    # 64 sigmoid hidden units, softmax output, full-batch gradient descent, lr 0.1.
    X_train, X_test, y_train, y_test = digits
    np.random.seed(0)
    nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy')
    trainer = Trainer(nn, 'categorical_crossentropy')
    trainer.train(X_train, y_train, X_test, y_test, 1000, 0.1)

    assert len(trainer.train_loss) == len(trainer.test_loss) == 1000
    assert trainer.train_loss[-1] < trainer.train_loss[0]
    assert accuracy(nn, X_test, y_test) >= 0.90


def test_relu_adam_minibatches(digits, one_blas_thread):
    X_train, X_test, y_train, y_test = digits
    nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy', activation='relu', init='he', seed=0)
    trainer = Trainer(nn, 'categorical_crossentropy')
    trainer.train(X_train, y_train, X_test, y_test, 50, 1e-3, batch_size=32, optimizer='adam')

    assert accuracy(nn, X_test, y_test) >= 0.96
    np.testing.assert_array_equal(nn.predict(X_test), np.argmax(nn.forward(X_test), axis=1))
