"""deepprune: parallel reasoning without inter-trace redundancy.

Train a judge that predicts whether two unfinished reasoning traces will reach the same answer,
then prune redundant traces online by greedy clustering. Importing this package is cheap: heavy
dependencies (torch, transformers, vLLM) are imported inside the modules that need them.
"""

__version__ = "0.1.0"
