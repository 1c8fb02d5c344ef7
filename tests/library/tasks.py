"""Module-level task functions for executor tests (picklable by reference in worker processes)."""

from __future__ import annotations

import os


def square_or_die(context, item):
    """``item ** 2 + context``; item 13 kills its worker process, item 7 raises."""
    if item == 13:
        os._exit(3)
    if item == 7:
        raise ValueError("seven is unlucky")
    return item * item + (context or 0)


def math_threads(context, item):
    """The most threads any math library of this (worker) process would use."""
    import numpy as np
    from threadpoolctl import threadpool_info

    np.dot(np.ones((64, 64)), np.ones((64, 64)))  # the BLAS loaded and used
    return max((i["num_threads"] for i in threadpool_info()), default=1)
