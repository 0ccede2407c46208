"""The update rules as composable pieces, the torch.optim-compatible classes built on them, and argument
checking. Imports torch only: this layer is what a reader drops into a training loop."""
