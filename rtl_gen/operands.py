"""The operand distribution ``flow.py array`` costs 8-bit signed arrays on by default.

:data:`SHIPPED`: INT8 activation and weight codes of LeNet-5 on Fashion-MNIST, as a histogram CSV
(:func:`ppa.activity.read_histogram`); :mod:`dnn.operands` regenerates it (the DNN level is above
``rtl_gen``, so the generator lives there and only the file's path here).
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "data" / "lenet5_fashion_int8.csv"
