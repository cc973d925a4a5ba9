"""Temporal coherence, one stream at a time.

* ``smoothing``: motion-compensated smoothing of alpha (``AlphaSmoother``) and stabilisation of
  coarse masks (``stabilize_mask``), with the state they carry across batches (``TemporalState``);
* ``solve``: ``TemporalSolve``, a run's per-frame solve: the refine's prepare (started before the
  generator) and, frame by frame, the temporal prior, the refine's solve with it and the blend,
  built together with the state they share.

Importing this package loads nothing; import the modules.
"""
