"""Models: growth, scaling (USL, Amdahl), queueing, regression.

A model takes frames or arrays and returns a small immutable result with pure methods; it never
knows where the data came from and never plots, prints or renders.
"""
