# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Backprop by hand, one layer at a time
#
# npvae has no autograd. Every layer has a `forward(x)` that caches what it needs and a
# `backward(G)` that receives $G = \partial L/\partial y$, **adds** $\partial L/\partial\theta$
# into each parameter's `.grad` and returns $\partial L/\partial x$. This notebook opens up
# those backward passes one layer at a time:
#
# 1. **Linear**: $dW = G^\top x$, $db = \sum_n G_n$, $dx = G W$.
# 2. **Conv2d through im2col**: the column matrix of a tiny image, the weight matrix it meets,
#    and col2im as the adjoint that carries the gradient back to the pixels.
# 3. **ConvTranspose2d as the adjoint of Conv2d**, with the inner-product identity
#    $\langle \mathrm{conv}(x), u\rangle = \langle x, \mathrm{conv}^\top(u)\rangle$ checked on the spot.
# 4. **ReLU**, and the **sigmoid fused into the binary cross-entropy**.
#
# After each layer, its backward is checked against central finite differences with
# `npvae.gradcheck`, and then a deliberately broken backward shows what a caught bug looks like.
#
# These are the backward passes the paper does not write down (they sit under its eq. 30);
# the derivations are in [docs/derivations.md, sections 7-11](../../docs/derivations.md#7-bce-fused-with-the-sigmoid):
# [Linear](../../docs/derivations.md#8-linear),
# [Conv2d](../../docs/derivations.md#9-conv2d-im2col-turns-the-convolution-into-a-gemm),
# [ConvTranspose2d](../../docs/derivations.md#10-convtranspose2d-the-adjoint-of-conv2d),
# [ReLU](../../docs/derivations.md#11-relu-reshapes-and-adam),
# [BCE](../../docs/derivations.md#7-bce-fused-with-the-sigmoid).
#
# Every cell is cheap: change a number (a shape, a stride, a seed) and run it again.

# %%
import numpy as np

from npvae.gradcheck import check_module, finite_difference_check, format_table
from npvae.kernels import col2im_nhwc, im2col_nhwc
from npvae.losses import BernoulliLoss
from npvae.nn import Conv2d, ConvTranspose2d, Linear, ReLU, sigmoid

np.set_printoptions(precision=3, suppress=True, linewidth=110)
rng = np.random.default_rng(0)


def show(label, results):
    """Print one gradient check: the worst error per tensor, relative to the gradient's scale."""
    print(format_table([(label, r) for r in results]))
    return results


# %% [markdown]
# ## 1. Linear: $y = x W^\top + b$
#
# $y_{nk} = \sum_i x_{ni} W_{ki} + b_k$. Each $W_{ki}$ touches one term per image, so
# $\partial L/\partial W_{ki} = \sum_n G_{nk} x_{ni}$, i.e. $dW = G^\top x$; the bias touches
# every image once, $db = \sum_n G_n$; and $dx = G W$. The shapes check it: $G^\top x$ is
# (out, in) like $W$, and $G W$ is (N, in) like $x$.

# %%
N, IN, OUT = 4, 3, 2
layer = Linear(IN, OUT, rng=0, dtype=np.float64)
x = rng.standard_normal((N, IN))
y = layer.forward(x)                       # (N, OUT)
G = rng.standard_normal(y.shape)           # dL/dy, as if from the layers above
layer.zero_grad()
dx = layer.backward(G)

print("W", layer.weight.data.shape, " x", x.shape, " y", y.shape, " G", G.shape)
print("dW = G^T x     :", np.allclose(layer.weight.grad, G.T @ x))
print("db = sum_n G_n :", np.allclose(layer.bias.grad, G.sum(axis=0)))
print("dx = G W       :", np.allclose(dx, G @ layer.weight.data))

# %% [markdown]
# **The check.** `check_module` converts the layer to float64, draws a fixed random $G$, and
# compares `backward(G)` with central differences of $L = \sum y \odot G$:
# $\partial L/\partial\theta_i \approx (L(\theta_i + h) - L(\theta_i - h)) / 2h$ for every entry.
# The error reported is the worst absolute difference over a tensor divided by the tensor's
# largest gradient, so a correct float64 gradient scores around $10^{-9}$ and a bug around $1$.

# %%
show("Linear(3, 2)", check_module(Linear(IN, OUT, rng=0), x, rng=0))

# %% [markdown]
# **A broken backward.** A classic slip: averaging the bias gradient over the batch instead of
# summing it (the loss is already a batch mean; dividing again counts $1/N$ twice).


# %%
class LinearAveragingTheBias(Linear):
    def backward(self, grad_out):
        dx = super().backward(grad_out)
        self.bias.grad += grad_out.mean(axis=0) - grad_out.sum(axis=0)   # the bug: a mean, not a sum
        return dx


broken = show("Linear, bias gradient averaged", check_module(LinearAveragingTheBias(IN, OUT, rng=0), x, rng=0))
assert [r.tensor for r in broken if not r.passed] == ["bias"]

# %% [markdown]
# Only the bias fails, with an error of $1 - 1/N$: the table says which tensor is wrong and
# roughly by how much. (Try `N = 1`: the bug disappears, which is why checks use batches.)
#
# ## 2. Conv2d through im2col
#
# A convolution slides a $k_h \times k_w$ window over the (padded) image. **im2col** copies
# every window into one row of a matrix. npvae keeps activations channels-last, so a row
# lists the window's pixels in (row $i$, column $j$, channel $c$) order:
#
# $$\text{cols}[(n, o_h, o_w),\ (i, j, c)] = x_\text{pad}[n,\ o_h s + i,\ o_w s + j,\ c].$$
#
# Here is a 4 x 4 image holding 1..16, a 2 x 2 kernel, stride 1, no padding:

# %%
image = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)      # (N, C, H, W)
kernel, stride, padding = (2, 2), (1, 1), (0, 0)
print(image[0, 0])
cols = im2col_nhwc(image.transpose(0, 2, 3, 1), kernel, stride, padding)   # the kernels take NHWC
print("cols", cols.shape, "= (N * OH * OW windows, kH * kW * C entries per window)")
print(cols)

# %% [markdown]
# Row 0 is the top-left window (1, 2, 5, 6), row 1 the window one step to the right, and so on:
# 3 x 3 = 9 output positions. Try `stride = (2, 2)` (4 rows) or `padding = (1, 1)` (zeros appear
# where a window hangs over the border).
#
# The weight, PyTorch's $(C_\text{out}, C_\text{in}, k_h, k_w)$, is read in the same $(i, j, c)$
# order as a $(C_\text{out},\ k_h k_w C_\text{in})$ matrix $W_m$, and the whole convolution is **one
# matrix product**, $Y = \text{cols}\, W_m^\top + b$: a Linear layer applied to every window.

# %%
conv = Conv2d(1, 2, kernel, stride=stride, padding=padding, rng=0, dtype=np.float64)
W_m = conv.weight.data.transpose(0, 2, 3, 1).reshape(conv.out_channels, -1)
print("weight", conv.weight.data.shape, "-> W_m", W_m.shape)
print(W_m)
Y = cols @ W_m.T + conv.bias.data                                   # (N*OH*OW, C_out): NHWC rows
y = conv.forward(image)                                             # (N, C_out, OH, OW)
print("conv.forward == cols W_m^T + b:", np.allclose(y, Y.reshape(1, 3, 3, 2).transpose(0, 3, 1, 2)))

# %% [markdown]
# **Backward.** Because $Y$ is a Linear layer on the rows of cols, section 1 gives
# $dW_m = G^\top \text{cols}$, $db = \sum_\text{rows} G$ and $d\,\text{cols} = G W_m$. For the image,
# im2col is linear, $\text{cols} = P x$ with $P$ a 0/1 copying matrix, so $dx = P^\top d\,\text{cols}$:
# **col2im** adds every entry of $d\,\text{cols}$ back onto the pixel it was copied from. Where
# windows overlap, the contributions add up. col2im of a matrix of ones counts how many windows
# read each pixel:

# %%
print(col2im_nhwc(np.ones_like(cols), (1, 4, 4, 1), kernel, stride, padding)[0, :, :, 0])

# %%
G = rng.standard_normal(y.shape)
conv.zero_grad()
dx = conv.backward(G)
G_rows = G.transpose(0, 2, 3, 1).reshape(-1, conv.out_channels)     # (N*OH*OW, C_out)
dW_m = G_rows.T @ cols
dx_by_hand = col2im_nhwc(G_rows @ W_m, (1, 4, 4, 1), kernel, stride, padding).transpose(0, 3, 1, 2)
print("dW = G^T cols      :", np.allclose(conv.weight.grad.transpose(0, 2, 3, 1).reshape(2, -1), dW_m))
print("db = sum_rows G    :", np.allclose(conv.bias.grad, G_rows.sum(axis=0)))
print("dx = col2im(G W_m) :", np.allclose(dx, dx_by_hand))

# %% [markdown]
# The check, on a configuration like the paper's (two input channels, 3 x 3 kernel, stride 2,
# padding 1), and then a bug of the kind the channels-last layout invites: the kernel's rows
# and columns swapped when the weight gradient is put back into PyTorch's shape.

# %%
x = rng.standard_normal((2, 2, 7, 7))
show("Conv2d(2, 3, 3, s2, p1)", check_module(Conv2d(2, 3, 3, stride=2, padding=1, rng=0), x, rng=0))


# %%
class Conv2dWithSwappedKernelAxes(Conv2d):
    def backward(self, grad_out):
        dx = super().backward(grad_out)
        self.weight.grad[...] = self.weight.grad.transpose(0, 1, 3, 2).copy()   # the bug: (i, j) read as (j, i)
        return dx


broken = show("Conv2d, kernel axes swapped in dW",
              check_module(Conv2dWithSwappedKernelAxes(2, 3, 3, stride=2, padding=1, rng=0), x, rng=0))
assert [r.tensor for r in broken if not r.passed] == ["weight"]

# %% [markdown]
# ## 3. ConvTranspose2d: the adjoint of Conv2d
#
# Without bias, a Conv2d is a linear map $A$. The transposed convolution is *defined* as its
# adjoint $A^\top$: the unique map with $\langle A x, u\rangle = \langle x, A^\top u\rangle$ for all
# $x, u$. Written with the two kernels, $A x = \text{im2col}(x) W_m^\top$ and
# $A^\top u = \text{col2im}(u_\text{rows} W_m)$: the same two pieces, in the other order. That is
# also exactly Conv2d's backward to its input, and a ConvTranspose2d's backward is a Conv2d's
# forward. Check all of it with the paper's shape (kernel 4, stride 2, padding 1: 8 x 8 -> 4 x 4
# and back):

# %%
conv = Conv2d(3, 5, 4, stride=2, padding=1, bias=False, rng=1, dtype=np.float64)
conv_t = ConvTranspose2d(5, 3, 4, stride=2, padding=1, bias=False, rng=2, dtype=np.float64)
conv_t.weight.data[...] = conv.weight.data          # both (5, 3, 4, 4): the same numbers
x = rng.standard_normal((2, 3, 8, 8))
u = rng.standard_normal((2, 5, 4, 4))

lhs = np.sum(conv.forward(x) * u)                   # <A x, u>
rhs = np.sum(x * conv_t.forward(u))                 # <x, A^T u>
print(f"<conv(x), u>   = {lhs:.12f}")
print(f"<x, convT(u)>  = {rhs:.12f}")
print("shapes:", x.shape, "->", conv.forward(x).shape, "->", conv_t.forward(conv.forward(x)).shape)
conv.zero_grad()
print("convT.forward(u) == conv.backward(u):", np.allclose(conv_t.forward(u), conv.backward(u)))
assert abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs))

# %% [markdown]
# Note what the adjoint is *not*: an inverse. `conv_t.forward(conv.forward(x))` has `x`'s shape
# but not its values. Now the check, then a ConvTranspose2d whose backward forgets its bias.

# %%
u = rng.standard_normal((2, 3, 4, 4))
show("ConvTranspose2d(3, 2, 4, s2, p1)",
     check_module(ConvTranspose2d(3, 2, 4, stride=2, padding=1, rng=0), u, rng=0))


# %%
class ConvTranspose2dForgettingTheBias(ConvTranspose2d):
    def backward(self, grad_out):
        before = self.bias.grad.copy()
        dx = super().backward(grad_out)
        self.bias.grad[...] = before                # the bug: db never accumulated
        return dx


broken = show("ConvTranspose2d, no bias gradient",
              check_module(ConvTranspose2dForgettingTheBias(3, 2, 4, stride=2, padding=1, rng=0), u, rng=0))
assert [r.tensor for r in broken if not r.passed] == ["bias"]

# %% [markdown]
# ## 4. ReLU
#
# $y = \max(x, 0)$, so $dx = G \odot [x > 0]$, and since $[x > 0] = [y > 0]$ the layer keeps only
# its output. At $x = 0$ exactly, the subgradient 0 is taken (as PyTorch does).

# %%
x = rng.standard_normal((3, 5))
show("ReLU", check_module(ReLU(), x, rng=0))


# %%
class ReLUTimesItsOutput(ReLU):
    def backward(self, grad_out):
        return grad_out * self._cached("_y")        # the bug: the slope of max(x, 0) is 1, not y


broken = show("ReLU, slope y instead of 1", check_module(ReLUTimesItsOutput(), x, rng=0))
assert not broken[0].passed

# %% [markdown]
# A subtlety the check itself must handle: at a kink the central difference straddles two
# slopes. With an input exactly at 0, $(\max(h, 0) - \max(-h, 0))/2h = 1/2$, while the
# subgradient is 0:

# %%
h = 1e-6
print("central difference at 0:", (ReLU().forward(np.array([h])) - ReLU().forward(np.array([-h])))[0] / (2 * h))

# %% [markdown]
# So `check_module` watches the on/off pattern of every ReLU it runs, and for an entry whose
# step $\pm h$ flips one it takes a one-sided difference on the side that flips none. The
# correct backward then passes even at the kink (the broken one above still fails):

# %%
at_kink = np.array([[0.0, 1.0, -1.0]])
show("ReLU at x = 0 (a kink)", check_module(ReLU(), at_kink, rng=0))

# %% [markdown]
# ## 5. The sigmoid fused into the binary cross-entropy
#
# The decoder outputs logits $l$; the pixel probability is $\sigma(l)$. Per pixel,
# $\text{BCE} = -x\log\sigma(l) - (1-x)\log(1-\sigma(l))$. Written in terms of $l$ it becomes
# $\max(l, 0) - l x + \log(1 + e^{-|l|})$, where `exp` never sees a large argument, and its
# derivative collapses to
#
# $$\frac{\partial\,\text{BCE}}{\partial l} = \sigma(l) - x.$$
#
# Computing the sigmoid first and the BCE of its output second is the same function on paper
# but not in floating point: once $\sigma(l)$ rounds to exactly 1, $\log(1 - \sigma(l))$ is
# $-\infty$.

# %%
logits = np.array([[-40.0, -3.0, 0.0, 3.0, 40.0]], dtype=np.float32)
target = np.array([[1.0, 0.0, 0.5, 1.0, 0.0]], dtype=np.float32)
with np.errstate(divide="ignore"):
    p = sigmoid(logits)
    naive = -(target * np.log(p) + (1 - target) * np.log(1 - p))
fused = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
print("sigmoid(l)     ", p)
print("BCE, two steps ", naive)
print("BCE, fused     ", fused)
loss = BernoulliLoss()
print("BernoulliLoss  ", loss.forward(logits, target), "= the fused row's sum")

# %% [markdown]
# `BernoulliLoss` sums over the pixels of each image and averages over the $N$ images, so its
# gradient is $(\sigma(l) - x)/N$. It is a loss, not a layer, so `finite_difference_check` is
# called directly: a scalar function, the tensors it reads, and the analytic gradients.

# %%
logits = rng.standard_normal((3, 1, 4, 4)) * 3
target = rng.uniform(size=logits.shape)
loss = BernoulliLoss()
loss.forward(logits, target)
analytic = loss.backward()
print("backward == (sigmoid(l) - x) / N:", np.allclose(analytic, (sigmoid(logits) - target) / len(logits)))
show("BernoulliLoss (fused sigmoid + BCE)",
     finite_difference_check(lambda: BernoulliLoss().forward(logits, target), {"logits": logits},
                             {"logits": analytic}))

# %% [markdown]
# And the bug of forgetting that the loss is a batch *mean* (the gradient $N$ times too large):

# %%
broken = show("BernoulliLoss, gradient not divided by N",
              finite_difference_check(lambda: BernoulliLoss().forward(logits, target),
                                      {"logits": logits}, {"logits": analytic * len(logits)}))
assert not broken[0].passed

# %% [markdown]
# ## Where next
#
# * `npvae gradcheck` runs every such check (each layer type, the losses, the
#   reparameterisation, the whole VAE and CVAE) and prints one table;
#   `npvae gradcheck conv2d --in 3 --out 4 --kernel 3 --stride 2 --padding 1` checks a
#   configuration you name.
# * Notebook 2 puts these layers together: the VAE's objective, its gradients, and one whole
#   training step traced layer by layer.
# * The code: `npvae/nn/linear.py`, `npvae/nn/conv.py`, `npvae/kernels/im2col.py`,
#   `npvae/nn/conv_transpose.py`, `npvae/nn/activations.py`, `npvae/losses/bernoulli.py`.
