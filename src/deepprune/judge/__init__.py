"""The pair judge: prompt, heads (generative and classifier), losses, metrics, training module, export, scorers.

Submodules import torch and transformers lazily or at their own top level; importing `deepprune.judge` itself
is cheap.
"""
