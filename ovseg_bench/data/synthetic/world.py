"""The synthetic world's classes and words: things and stuff, their synonyms, colours and
adjectives, the dataset views (which classes a layout labels, and with which values) and the
vocabulary files written from them."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class World:
    """Class lists and words of the synthetic world."""
    things: tuple
    stuff: tuple
    synonyms: dict      # class -> synonyms (the class name itself is the canonical name)
    patterns: dict      # thing -> adjectives describing its fill pattern
    stuff_adjectives: dict

    @property
    def classes(self):
        return self.things + self.stuff

    def names(self, cls):
        """Canonical name first, then the synonyms."""
        return (cls,) + tuple(self.synonyms[cls])


WORLD = World(
    things=('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'diamond', 'heart'),
    stuff=('grass', 'water', 'brick', 'sand', 'wood', 'sky'),
    synonyms={
        'circle': ('disc', 'round shape'), 'square': ('box', 'block'),
        'triangle': ('wedge', 'trigon'), 'star': ('starburst', 'pentagram'),
        'cross': ('plus sign', 'plus'), 'ring': ('donut', 'hoop'),
        'diamond': ('rhombus', 'lozenge'), 'heart': ('love heart', 'valentine'),
        'grass': ('lawn', 'turf'), 'water': ('sea', 'lake'),
        'brick': ('brick wall', 'bricks'), 'sand': ('beach', 'dune'),
        'wood': ('timber', 'wooden planks'), 'sky': ('clouds', 'heavens'),
    },
    patterns={
        'circle': ('dotted', 'spotted'), 'square': ('striped', 'stripy'),
        'triangle': ('plain', 'solid'), 'star': ('checkered', 'chequered'),
        'cross': ('gridded', 'plaid'), 'ring': ('banded', 'segmented'),
        'diamond': ('zigzag', 'chevron'), 'heart': ('shiny', 'glossy'),
    },
    stuff_adjectives={
        'grass': ('lush', 'short'), 'water': ('calm', 'rippling'), 'brick': ('old', 'red'),
        'sand': ('dry', 'golden'), 'wood': ('polished', 'old'), 'sky': ('cloudy', 'open'),
    },
)
THINGS, STUFF, CLASSES = WORLD.things, WORLD.stuff, WORLD.classes
SYNONYMS = WORLD.synonyms
CONTEXT_BACKGROUND = 'wood'   # Pascal Context view: this stuff class is unlabelled (0)
ADE_OTHER = 'sand'            # ADE20K view: this stuff class is "other" (0)

COLOURS = {
    'red': (215, 35, 35), 'orange': (240, 135, 25), 'yellow': (240, 215, 40),
    'green': (45, 165, 60), 'blue': (35, 75, 215), 'purple': (125, 45, 170),
    'pink': (240, 125, 180), 'white': (238, 238, 238), 'black': (28, 28, 28),
    'gray': (125, 125, 125), 'brown': (125, 78, 38), 'cyan': (35, 195, 205),
}
COLOUR_NAMES = tuple(COLOURS)
# Each thing class has a usual colour (as real classes do: grass is green, sky is blue), chosen
# away from the stuff textures' colours; a thing takes it with probability THING_COLOUR_PROB,
# else any colour, so colour is a strong cue to the class but not a sufficient one.
THING_COLOURS = {'circle': 'red', 'square': 'black', 'triangle': 'yellow', 'star': 'purple',
                 'cross': 'orange', 'ring': 'cyan', 'diamond': 'pink', 'heart': 'white'}
THING_COLOUR_PROB = 0.75

# Each view: classes as the dataset class sees them, and world id -> on-disk value.
_N = len(CLASSES)


def _view_table():
    t = {}
    lut = np.zeros(_N, np.uint8)
    lut[:len(THINGS)] = np.arange(1, len(THINGS) + 1)
    t['voc'] = (('background',) + THINGS, lut)
    ctx = [c for c in STUFF if c != CONTEXT_BACKGROUND]
    order = ('background',) + THINGS + tuple(ctx)
    t['context'] = (order, np.array([order.index(c) if c in order else 0 for c in CLASSES],
                                    np.uint8))
    t['context59'] = (order[1:], t['context'][1])
    t['coco_stuff'] = (CLASSES, np.arange(_N, dtype=np.uint8))
    ade = THINGS + tuple(c for c in STUFF if c != ADE_OTHER)
    t['ade'] = (ade, np.array([ade.index(c) + 1 if c in ade else 0 for c in CLASSES], np.uint8))
    return t


_VIEWS = _view_table()
VIEWS = tuple(_VIEWS)


def view_classes(view):
    """Class names of a dataset view in label order, as its mmseg dataset class reports them
    (``context59`` and ``ade`` after ``reduce_zero_label``)."""
    return _VIEWS[view][0]


def view_lut(view):
    """uint8 lookup table: world class id -> value written in that view's mask files."""
    return _VIEWS[view][1].copy()


# ---------------------------------------------------------------- vocabularies
_VOCAB_VIEWS = {'synth_voc': 'voc', 'synth_context': 'context', 'synth_coco': 'coco_stuff',
                'synth_ade': 'ade'}


def vocabulary_lines(name):
    """Lines of the vocabulary file ``name`` (``synth_voc``, ``synth_context``, ``synth_coco``,
    ``synth_ade``): canonical name then synonyms. The background of the VOC view is every
    stuff class, that of the Context view is ``CONTEXT_BACKGROUND``, so it has prompts."""
    view = _VOCAB_VIEWS[name]
    lines = []
    for cls in view_classes(view):
        if cls == 'background':
            hidden = STUFF if view == 'voc' else (CONTEXT_BACKGROUND,)
            names = ('background',) + tuple(n for c in hidden for n in WORLD.names(c))
        else:
            names = WORLD.names(cls)
        lines.append(', '.join(names))
    return lines


def write_vocabularies(out_dir=None):
    """Write the synthetic vocabularies (by default into ``ovseg_bench/vocabularies``)."""
    out_dir = Path(out_dir or Path(__file__).resolve().parents[2] / 'vocabularies')
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _VOCAB_VIEWS:
        (out_dir / f'{name}.txt').write_text('\n'.join(vocabulary_lines(name)) + '\n')
    return out_dir
