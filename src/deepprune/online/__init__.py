"""Online pruning: generators, judges, greedy clustering, voting, policies, token accounting and the runner.

The entry point is ``python -m deepprune.online`` (``deepprune/online/__main__.py``; a package and an
``online.py`` module cannot share the name ``deepprune.online``). :func:`main` is the console-script hook.
"""


def main() -> None:
    """Console script ``deepprune-online``: the Hydra app in ``deepprune.online.__main__``."""
    from deepprune.online.__main__ import main as hydra_main

    hydra_main()
