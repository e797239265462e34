"""Dense layers: GEMM through BLAS (``blas.matmul``) plus fused element-wise epilogues."""
import numpy as np

from ._jit import cast_like, jit
from .activations import bias_activation, multiply_derivative
from .blas import matmul


@jit(inline="always")
def dense_forward(A_prev, W, b, code, alpha, A):
    """A <- f(A_prev @ W + b). A_prev (n, d_in), W (d_in, d_out), b (d_out,), A (n, d_out) written."""
    matmul(A_prev, W, A)
    bias_activation(A, b, code, alpha)


@jit
def column_sum(D, out):
    """out <- sum of D over rows. D (n, d), out (d,) written. Row-wise adds vectorise."""
    n, d = D.shape
    for j in range(d):
        out[j] = 0.0
    for i in range(n):
        for j in range(d):
            out[j] += D[i, j]


@jit(inline="always")
def dense_backward(A_prev, W, D, l2, dW, db, D_prev, prev_code, alpha):
    """Gradients of one layer from its delta D = dL/dZ.

    A_prev (n, d_in) the layer's input, W (d_in, d_out), D (n, d_out).
    Writes dW (d_in, d_out) = A_prev^T D + l2 W, db (d_out,) = column sums of D, and,
    when D_prev has rows (D_prev (n, d_in); pass a (0, 0) array for the first layer),
    D_prev = (D W^T) * f'(A_prev) where f is the previous layer's activation ``prev_code``.
    """
    matmul(A_prev.T, D, dW)
    if l2 != 0.0:
        l2 = cast_like(l2, W)
        d_in, d_out = W.shape
        for i in range(d_in):
            for j in range(d_out):
                dW[i, j] += l2 * W[i, j]
    column_sum(D, db)
    if D_prev.shape[0] > 0:
        matmul(D, W.T, D_prev)
        multiply_derivative(D_prev, A_prev, prev_code, alpha)
