"""Looking inside a model: layer-by-layer shapes, FLOPs, activations and gradients (`npvae inspect`).

flops.py          the architecture table: names, shapes, parameters, MFLOP per layer (describe)
inspect.py        one batch through the model's own forward, loss and backward (inspect_model,
                  inspect_run), watched with npvae.nn.observe
gradient_flow.py  the same at the start and the end of a run's training (training_stages)
"""
