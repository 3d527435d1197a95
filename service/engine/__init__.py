"""The inference engine: plain PyTorch and tokenizers, nothing of Ray or HTTP."""
