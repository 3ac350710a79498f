"""The convolutional encoder and decoder of the paper's Tables 1 and 2.

Encoder (Table 1)                          Decoder (Table 2)
  x            C_in x 28 x 28                z (+ label)   d (+10)
  Conv 4x4 s2  32 x 14 x 14  + ReLU          Linear        2048 + ReLU
  Conv 4x4 s2  64 x 7 x 7    + ReLU          reshape       128 x 4 x 4
  Conv 3x3 s2  128 x 4 x 4   + ReLU          ConvT 3x3 s2  64 x 7 x 7   + ReLU
  flatten      2048                          ConvT 4x4 s2  32 x 14 x 14 + ReLU
  (then two Linear heads: mu, logvar)        ConvT 4x4 s2  1 x 28 x 28  (+ sigmoid, fused in the loss)

Every convolution uses padding 1, which is what makes the sizes come out as listed.
ReLUs work in place: nothing else keeps the arrays they overwrite.
"""
from ..nn import ConditionedConv2d, Conv2d, ConvTranspose2d, Flatten, Linear, ReLU, Sequential, Unflatten

IMAGE_SHAPE = (1, 28, 28)
FEATURES = 128 * 4 * 4


def build_encoder(image_channels, condition_channels, rng):
    """The CVAE's label planes (``condition_channels`` > 0) go through a ConditionedConv2d:
    the same 11-channel convolution, computed from the planes' constant values."""
    first = (ConditionedConv2d(image_channels, condition_channels, 32, 4, stride=2, padding=1, rng=rng)
             if condition_channels else Conv2d(image_channels, 32, 4, stride=2, padding=1, rng=rng))
    encoder = Sequential(
        first, ReLU(inplace=True),
        Conv2d(32, 64, 4, stride=2, padding=1, rng=rng), ReLU(inplace=True),
        Conv2d(64, 128, 3, stride=2, padding=1, rng=rng), ReLU(inplace=True),
        Flatten(),
    )
    # The image is data, not a parameter: skip the first layer's input gradient.
    encoder[0].requires_input_grad = False
    return encoder


def build_decoder(input_dim, rng):
    return Sequential(
        Linear(input_dim, FEATURES, rng=rng), ReLU(inplace=True),
        Unflatten((128, 4, 4)),
        ConvTranspose2d(128, 64, 3, stride=2, padding=1, rng=rng), ReLU(inplace=True),
        ConvTranspose2d(64, 32, 4, stride=2, padding=1, rng=rng), ReLU(inplace=True),
        ConvTranspose2d(32, 1, 4, stride=2, padding=1, rng=rng),
    )
