"""macflow: offline multi-agent RL by flow matching (MAC-Flow) in PyTorch Lightning."""

__version__ = "0.1.0"
