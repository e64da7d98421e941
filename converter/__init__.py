"""ptocr's converter: Paddle model files -> PyTorch weights, without paddlepaddle.

Versioned with the runtime it ships with (``ptocr.version``)."""
