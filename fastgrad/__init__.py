"""fastgrad: fast, correct gradient kernels for matrix calculus.

The public API.  Kernels run on the Cython backend where its extension is
built, else on Numba; ``'numpy'`` (the reference) is the third.  See
``help(fastgrad.mse_grad)``.
"""

from ._config import (
    BackendUnavailableError,
    available_backends,
    get_backend,
    get_num_threads,
    set_backend,
    set_num_threads,
    use_backend,
)
from .gradient_checks import GradcheckResult, GradientMismatchError, approx_fprime, check_grad, gradcheck
from .hessian import hesscheck, numhess, numhess_diag, numhvp
from .identities import dinv, grad_det, grad_logdet, grad_sq_norm_affine, grad_trace_AXB, jacobian_inv
from .kron import jacobian_AXB, jacobian_Wx, kron, matmul_jacobian, unvec, vec
from .mse import MSEObjective, mse_grad, mse_loss, mse_loss_and_grad, mse_numgrad
from .mse_second_order import mse_hessian, mse_hessp
from .nn import dense_backward, dense_forward, mlp2_loss_and_grad
from .numdiff import numgrad, numjac
from .sparsity import detect_sparsity, group_columns
from .taylor import TaylorResult, taylor_test
from .train import FitResult, fit_linear

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "BackendUnavailableError",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "get_num_threads",
    "set_num_threads",
    "mse_loss",
    "mse_grad",
    "mse_loss_and_grad",
    "MSEObjective",
    "mse_hessp",
    "mse_hessian",
    # numerical differentiation
    "numgrad",
    "numjac",
    "group_columns",
    "detect_sparsity",
    "mse_numgrad",
    "approx_fprime",
    "check_grad",
    "gradcheck",
    "GradcheckResult",
    "GradientMismatchError",
    "taylor_test",
    "TaylorResult",
    # second derivatives
    "numhess",
    "numhess_diag",
    "numhvp",
    "hesscheck",
    # Kronecker/vec Jacobians and identities
    "kron",
    "vec",
    "unvec",
    "jacobian_Wx",
    "jacobian_AXB",
    "KronOperator",
    "matmul_jacobian",
    "grad_logdet",
    "grad_det",
    "grad_trace_AXB",
    "grad_sq_norm_affine",
    "dinv",
    "jacobian_inv",
    # neural-network gradients and training
    "dense_forward",
    "dense_backward",
    "mlp2_loss_and_grad",
    "fit_linear",
    "FitResult",
]


def __getattr__(name: str):
    """``KronOperator`` on first use (it subclasses scipy's ``LinearOperator``, whose import
    ``import fastgrad`` skips; see fastgrad/kron.py)."""
    if name == "KronOperator":
        from .kron import KronOperator

        return KronOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
