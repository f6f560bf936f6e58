"""The CAKES search: supernets, the paper's two modes, and derivation under a budget.

Above ``models/``, ``checkpoint/`` and ``zoo/`` (a supernet is initialised from their weights),
below ``engine/`` (which trains a supernet with the ordinary loop and its hooks).
"""
