"""specsim: roofline + acceptance-rate simulator for the economics of MTP speculative decoding.

Data flows one way: specs -> step cost -> speculative step -> serving loop -> frontier -> economics -> tasks.
"""

__version__ = "0.1.0"
