"""Foreground colour and what the writer encodes.

* ``blur_fusion``: the foreground colour F such that I = aF + (1-a)B (``estimate_foreground``,
  ``estimate_foreground_band``);
* ``compose``: the arrays of an output kind: straight (F, a), the matte, the foreground, or a
  composite over a background (``render_output``, ``parse_background``).

Importing this package loads nothing; import the modules.
"""
