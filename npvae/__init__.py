"""npvae: convolutional VAE and CVAE in NumPy + Numba, every gradient written by hand."""
__version__ = "0.1.0"
