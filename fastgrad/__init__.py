"""fastgrad: fast, correct gradient kernels for matrix calculus.

The public API.  Kernels run on the Numba backend by default; ``'cython'`` and
``'numpy'`` (the reference) are the others.  See ``help(fastgrad.mse_grad)``.
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
from .mse import MSEObjective, mse_grad, mse_loss, mse_loss_and_grad

# --- numerical differentiation (numdiff.py) ---

# --- Kronecker/vec Jacobians and identities (kron.py, identities.py) ---

# --- neural-network gradients and training (nn.py, train.py) ---

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
    # --- numerical differentiation names ---
    # --- Kronecker/vec Jacobians and identities names ---
    # --- neural-network gradients and training names ---
]
