r"""``fastgrad demo``: a small least-squares fit by gradient descent, done right.

The demo fits ``Y ~ A W`` with A = [[1,2,3],[4,5,6],[7,8,9]] (float32),
Y = [14, 32, 50] and ``np.random.seed(0); W = np.random.randn(3, 1)``.  This
example first appeared with its "central differences" written
``(loss(w+h) - loss(w-h)) / 2*h`` with h = 0.1.  Python reads that as
``((loss(w+h) - loss(w-h)) / 2) * h``, i.e. h² times the central difference
quotient, so that loop was gradient descent with learning rate h² = 0.01
(docs/derivations.md, "Slips in the original notes").  The demo runs correct
central differences (``fastgrad.fit_linear(grad='central', h=0.1)``) at
lr = 0.01, which reproduces the original printed trace, runs the analytic
gradient (``fastgrad.mse_loss_and_grad``) alongside, shows that both agree
(docs/derivations.md, "MSE gradient of a linear model"), and writes a
loss-curve PNG when matplotlib (the extra ``plot``) is installed.

Wired into the command line by ``fastgrad.cli`` as the ``demo`` subcommand via
:func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

import numpy as np

__all__ = ["add_arguments", "run", "seed004_problem", "SEED004_TRACE"]

# The trace the original example printed (loss before training, after updates 1-5 and
# 997-1000, final W).
SEED004_TRACE = {
    0: 340.381080443314,
    1: 271.2823807105329,
    2: 216.2515975467686,
    3: 172.42400336832483,
    4: 137.51824026392174,
    5: 109.71752315572326,
    997: 2.7843784765948775e-07,
    998: 2.742164675205845e-07,
    999: 2.7005908748527544e-07,
    1000: 2.6596473724906243e-07,
}
SEED004_W = (1.32439537, 1.35257131, 3.32322317)

DEFAULT_OUT = "fastgrad-demo-loss.png"


def seed004_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo's ``(A, Y, W0)``: A float32 (3, 3), Y (3, 1), ``np.random.seed(0); randn(3, 1)``.

    The global numpy random state is left as it was.
    """
    A = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype="float32")
    Y = np.array([[14], [32], [50]])
    W0 = np.random.RandomState(0).randn(3, 1)  # the same stream as np.random.seed(0); randn
    return A, Y, W0


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (the ``demo`` subcommand's parser)."""
    parser.add_argument("--out", metavar="PATH", default=DEFAULT_OUT,
                        help=f"where to write the loss-curve PNG (default: ./{DEFAULT_OUT})")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    parser.add_argument("--epochs", type=int, default=1000, help="gradient-descent updates (default 1000)")
    parser.add_argument("--lr", type=float, default=0.01,
                        help="learning rate (default 0.01 = h**2, the original example's effective rate)")
    parser.add_argument("--h", type=float, default=0.1, help="central-difference step (default 0.1)")
    return parser


def _plot(losses_central: np.ndarray, losses_analytic: np.ndarray, path: str) -> None:
    """Write the loss curves to ``path`` with matplotlib's Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.semilogy(losses_central, label="central differences (h = 0.1)")
    ax.semilogy(losses_analytic, "--", label="analytic gradient")
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Loss (MSE)")
    ax.set_title("fastgrad demo: least squares by gradient descent")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _unwritable_reason(path: str) -> str | None:
    """Why the loss-curve PNG cannot be written to ``path`` (None: it looks writable).

    Checked before the fit, so that a bad ``--out`` fails at once and not after the whole run:
    the directory must exist and be writable, ``path`` must not be a directory, and its
    extension (if any; none: PNG, and ``.png`` is appended) must be one matplotlib saves
    by itself.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    directory = os.path.dirname(path) or os.curdir
    if not os.path.isdir(directory):
        return f"no such directory: {directory}"
    if os.path.isdir(path):
        return "it is a directory"
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "permission denied"
    ext = os.path.splitext(path)[1][1:].lower()
    supported = dict(FigureCanvasAgg.get_supported_filetypes())
    supported.pop("pgf", None)  # matplotlib writes PGF through a LaTeX installation
    if ext and ext not in supported:
        return f"unsupported format {ext!r} (supported: {', '.join(sorted(supported))})"
    return None


def run(args: argparse.Namespace | None = None, *, file: TextIO | None = None) -> int:
    """Run the demo; return the exit code (0 on success, 2 on bad options).

    Bad options include an ``--out`` that cannot be written (missing or read-only directory,
    a format matplotlib cannot save): ``fastgrad demo: cannot write PATH: REASON`` on stderr,
    checked before the fit.  (1: the two gradients disagree.)
    """
    from .train import fit_linear

    out = sys.stdout if file is None else file
    if args is None:
        args = add_arguments(argparse.ArgumentParser()).parse_args([])

    def say(*parts: object) -> None:
        print(*parts, file=out)

    def cannot_write(path: str, reason: object) -> int:
        print(f"fastgrad demo: cannot write {path}: {reason}", file=sys.stderr)
        return 2

    plot = not getattr(args, "no_plot", False)
    path = getattr(args, "out", DEFAULT_OUT) or DEFAULT_OUT
    if not os.path.splitext(path)[1] and not os.path.isdir(path):
        path += ".png"  # what matplotlib would write: say so, and check that name
    have_matplotlib = False
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            have_matplotlib = True
            reason = _unwritable_reason(path)  # before the fit, not after it
            if reason is not None:
                return cannot_write(path, reason)

    A, Y, W0 = seed004_problem()
    epochs = getattr(args, "epochs", 1000)
    lr = getattr(args, "lr", 0.01)
    h = getattr(args, "h", 0.1)
    try:
        central = fit_linear(A, Y, lr=lr, epochs=epochs, grad="central", h=h, w0=W0)
        analytic = fit_linear(A, Y, lr=lr, epochs=epochs, grad="analytic", w0=W0)
    except (ValueError, TypeError) as exc:
        print(f"fastgrad demo: {exc}", file=sys.stderr)
        return 2

    say("Fit Y ~ A W by gradient descent on the mean squared error:")
    say("  A = [[1,2,3],[4,5,6],[7,8,9]] (float32), Y = [14, 32, 50], "
        "np.random.seed(0); W = np.random.randn(3, 1)")
    say("This example first appeared with the step (loss(w+h) - loss(w-h)) / 2*h, which divides")
    say("  by 2 and then MULTIPLIES by h: it is h**2 * dL/dw, so that loop was gradient descent")
    say(f"  with learning rate h**2 = {0.1**2:g} (docs/derivations.md, \"Slips in the original notes\").")
    say(f"Here: correct central differences (h = {h:g}), divided by 2h, at lr = {lr:g}:")
    say()
    losses = central.losses
    say("Loss:", repr(float(losses[0])))
    n = len(losses) - 1
    shown = sorted({k for k in (1, 2, 3, 4, 5) if k <= n} | {k for k in range(n - 3, n + 1) if k > 5})
    for k in shown:
        if k > 5 and k - 1 not in shown:
            say("...")
        say(f"Loss ({k}):", repr(float(losses[k])))
    say(f"W: {W0.flatten()} -> {central.w.flatten()}")
    say(f"Y: {Y.flatten()} ~= {(A @ central.w).flatten()}")
    say()
    d_loss = float(np.max(np.abs(central.losses - analytic.losses) / np.maximum(np.abs(analytic.losses),
                                                                               np.finfo(float).tiny)))
    d_w = float(np.max(np.abs(central.w - analytic.w)))
    say("Analytic gradient (fastgrad.mse_loss_and_grad) vs central differences (fastgrad.mse_numgrad):")
    say(f"  max relative difference of the {n + 1} losses: {d_loss:.2e}")
    say(f"  max |W_central - W_analytic|: {d_w:.2e}")
    agree = bool(np.allclose(central.losses, analytic.losses, rtol=1e-6, atol=0) and d_w < 1e-6)
    say("  they agree" if agree else "  they DISAGREE")
    if epochs == 1000 and lr == 0.01:
        rel = max(abs(losses[k] - v) / v for k, v in SEED004_TRACE.items())
        verdict = "reproduce" if rel < 1e-8 else "DO NOT reproduce"
        say(f"  and {verdict} the original example's printed trace (max relative difference {rel:.1e}).")
    say("The loss is quadratic in each weight, so central differences differ from the analytic")
    say("gradient by rounding only (docs/derivations.md, \"MSE gradient of a linear model\").")
    say()
    if not plot:
        return 0 if agree else 1
    if not have_matplotlib:
        say("No loss-curve plot: matplotlib is not installed. "
            "Get it with: pip install fastgrad[plot]   (then run fastgrad demo again)")
        return 0 if agree else 1
    try:
        _plot(central.losses, analytic.losses, path)
    except OSError as exc:  # the checks above passed, but the write failed all the same
        return cannot_write(path, exc.strerror or exc)
    except (ValueError, RuntimeError) as exc:  # a format matplotlib could not write after all
        return cannot_write(path, exc)
    say(f"Loss curve written to {os.path.abspath(path)}")
    return 0 if agree else 1
