"""ptocr's converter: Paddle model files -> PyTorch weights, without paddlepaddle."""

__version__ = "0.1.0"
