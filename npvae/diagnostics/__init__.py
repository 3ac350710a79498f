"""Looking inside a model: layer-by-layer shapes, FLOPs, activations and gradients (`npvae inspect`)."""
