"""The stages of a run: thin adapters, one module each, that call the methods (``masks``,
``trimap``, ``generator``, ``refine``, ``temporal``, ``foreground``) on a
:class:`~alphagan_video.engine.Work` (one batch on its way) and fill in its fields.

``upload`` (frames to the device), ``mask`` (a mask source's mask, stabilised; or the user's
trimaps), ``trimap``, ``refine`` (the solve's prior-independent half, started beside the
generator), ``generator``, ``temporal`` (per frame: the temporal prior, the refine's solve, the
blend), ``coverage`` (empty/full mattes), ``output`` (foreground colour and the arrays the sink
writes).

A stage module imports methods and the engine's ``Stage``/``Work``, never another stage module.
The order of a run is declared once, in ``pipeline.build_chain``; ``engine.run`` drives it.
"""
