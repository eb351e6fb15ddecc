"""The synthetic world: procedural scenes of shapes ("things") on textured regions ("stuff").

Every scene is drawn from a numpy ``Generator`` only, so a seed fixes every pixel and caption.
A scene has 1-3 stuff regions (bands or blobs, each one texture) and 1-3 things painted over
them in order (later things occlude earlier ones; each keeps at least 40% of its area visible).
Things usually wear their class's colour (``THING_COLOURS``) and captions name what is in the
scene, so a tiny CLIP trained on the captions can learn both stuff and things.

World class ids (the label maps of :func:`render_scene` and ``coco/labels``) index
``CLASSES = THINGS + STUFF``; they equal the COCO-Stuff train ids of the ``coco_stuff164k``
layout. :func:`make_synthetic` writes four segmentation datasets in the real on-disk layouts
(each from its own seed stream) plus COCO-format captions:

``VOCdevkit/VOC2012``      background(0) + things; every stuff pixel is background; 255 void
                           border around each object; palette PNGs with VOC's colour map
``VOCdevkit/VOC2010``      Pascal Context as mmseg's converter leaves it: 0 background, then
                           things and every stuff class but ``CONTEXT_BACKGROUND`` (which is 0)
``coco_stuff164k``         ``*_labelTrainIds.png``: world ids, 255 on thin lines where stuff
                           regions meet (unlabelled)
``ADEChallengeData2016``   0 "other" (``ADE_OTHER`` pixels), 1..N the remaining classes
``coco``                   ``{train,val}2017`` images, ``annotations/captions_*2017.json`` (COCO
                           captions format; each image entry also lists its ``classes``) and
                           ``labels/{train,val}2017/*.png`` (world ids)

Modules: :mod:`.world` (classes, words, dataset views, vocabularies), :mod:`.textures` (stuff),
:mod:`.shapes` (things), :mod:`.captions`, :mod:`.scene` (one scene from a seed),
:mod:`.writers` (the on-disk layouts) and :mod:`.make` (:func:`make_synthetic`).
"""
from .captions import THING_ONLY_CAPTIONS
from .make import GENERATOR_VERSION, LAYOUTS, make_synthetic, usable_cpus, world_description
from .scene import render_scene
from .world import (ADE_OTHER, CLASSES, COLOURS, CONTEXT_BACKGROUND, STUFF, SYNONYMS,
                    THING_COLOURS, THINGS, VIEWS, WORLD, World, view_classes, view_lut,
                    vocabulary_lines, write_vocabularies)

__all__ = ['ADE_OTHER', 'CLASSES', 'COLOURS', 'CONTEXT_BACKGROUND', 'GENERATOR_VERSION',
           'LAYOUTS', 'STUFF', 'SYNONYMS', 'THINGS', 'THING_COLOURS', 'THING_ONLY_CAPTIONS',
           'VIEWS', 'WORLD', 'World', 'make_synthetic', 'render_scene', 'usable_cpus',
           'view_classes', 'view_lut', 'vocabulary_lines', 'world_description',
           'write_vocabularies']
