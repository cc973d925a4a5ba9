"""The stages of a run: thin adapters, one module each, that call the methods (``masks``,
``trimap``, ``generator``, ``refine``, ``temporal``, ``foreground``) on a
:class:`~alphagan_video.engine.Work` (one batch on its way) and fill in its fields:

* ``upload``: decoded frames to the device (``work.image``);
* ``mask``: a mask source's soft mask, stabilised over time (``work.soft``, ``work.mask``);
* ``user_trimap``: the user's trimaps instead of the mask and trimap stages (``work.trimap``);
* ``trimap``: evidence trimaps or the AlphaGAN band (``work.trimap``);
* ``refine``: starts the refine's prepare of every frame beside the generator;
* ``generator``: RGB + trimap -> alpha (``work.alpha``);
* ``temporal``: per frame, the temporal prior, the refine's solve with it, the blend;
* ``coverage``: frames whose matte is empty or full (for the report's warnings);
* ``output``: foreground colour and the arrays the sink writes (``work.output``).

The mask, refine and temporal stages share the run's ``temporal.solve.TemporalSolve``, which
owns the state they share. A stage module imports methods and the engine's ``Stage``/``Work``,
never another stage module; the order of a run is declared once, in ``pipeline.build_chain``,
and ``engine.run`` drives it.
"""
