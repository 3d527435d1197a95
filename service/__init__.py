"""attention-serve: a batched Ray Serve microservice for BERT-family encoders."""

__version__ = "0.1.0"
