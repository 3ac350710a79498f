"""Adam (Kingma & Ba, 2015), bias-corrected, with PyTorch's defaults and update formula.

For each parameter, with gradient g at step t:
    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
which is exactly ``torch.optim.Adam`` (weight_decay=0, amsgrad=False).
"""
import math

import numba
import numpy as np


# error_model="numpy": Numba's default ("python") checks every float division for a zero
# divisor so that it can raise ZeroDivisionError, and that check kept the loop scalar (no
# vsqrtps/vdivps): 0.94 ms per VAE step. Without it the loop vectorises: 0.23 ms, with the
# same IEEE operations in the same order, so the updates are bit-identical. (The divisor,
# sqrt(v)/sqrt_bias2 + eps, is never 0.)
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _adam_kernel(param, grad, m, v, beta1, beta2, step_size, sqrt_bias2, eps, tiny):
    # The scalars arrive in the parameters' dtype, so float32 training updates in float32,
    # as PyTorch does, and the loop vectorises.
    one, zero = param.dtype.type(1), param.dtype.type(0)
    p, g, m1, v1 = param.ravel(), grad.ravel(), m.ravel(), v.ravel()
    for i in range(p.size):
        gi = g[i]
        mi = beta1 * m1[i] + (one - beta1) * gi
        vi = beta2 * v1[i] + (one - beta2) * gi * gi
        # Where the gradient stays 0 (a unit that never fires) the moments decay into the
        # subnormal numbers and stick there (0.9 times the smallest one rounds back to it).
        # Arithmetic on subnormals is ~40x slower: measured, a VAE's Adam step grew from
        # 0.8 to 30 ms over 20 epochs. Flushing them to zero changes updates by < 1e-38.
        mi = mi if abs(mi) >= tiny else zero
        vi = vi if vi >= tiny else zero
        m1[i] = mi
        v1[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / sqrt_bias2 + eps)


class Adam:
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)`` over a list of Parameters."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam: got an empty parameter list")
        if not 0 < lr < math.inf or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 \
                or not 0 < eps < math.inf:      # written so that NaN fails too
            raise ValueError(f"Adam: invalid hyperparameters lr={lr}, betas={betas}, eps={eps}")
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.step_count = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        self.step_count += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.step_count)
        sqrt_bias2 = math.sqrt(1 - beta2 ** self.step_count)
        for p, m, v in zip(self.params, self.m, self.v):
            scalar = p.data.dtype.type
            _adam_kernel(p.data, p.grad, m, v, scalar(beta1), scalar(beta2), scalar(step_size),
                         scalar(sqrt_bias2), scalar(self.eps), np.finfo(p.data.dtype).tiny)

    def state_dict(self):
        state = {"step_count": np.int64(self.step_count), "lr": np.float64(self.lr),
                 "betas": np.array(self.betas), "eps": np.float64(self.eps)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m.{i}"], state[f"v.{i}"] = m.copy(), v.copy()
        return state

    def load_state_dict(self, state):
        # Validate everything before changing anything: a failed load leaves self intact.
        for i, p in enumerate(self.params):
            for key in (f"m.{i}", f"v.{i}"):
                if key not in state or np.shape(state[key]) != p.data.shape:
                    raise ValueError(f"Adam.load_state_dict: '{key}' is missing or does not match "
                                     f"parameter {i} of shape {p.data.shape}")
        n_saved = sum(1 for key in state if key.startswith("m."))
        if n_saved != len(self.params):
            raise ValueError(f"Adam.load_state_dict: the state holds {n_saved} parameters, "
                             f"the optimizer {len(self.params)}")
        self.m = [np.array(state[f"m.{i}"], dtype=p.data.dtype) for i, p in enumerate(self.params)]
        self.v = [np.array(state[f"v.{i}"], dtype=p.data.dtype) for i, p in enumerate(self.params)]
        self.step_count = int(state["step_count"])
        self.lr, self.eps = float(state["lr"]), float(state["eps"])
        self.betas = tuple(float(b) for b in state["betas"])
