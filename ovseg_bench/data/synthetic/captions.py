"""Captions of a scene: every thing group named (by a synonym, sometimes with its colour or
pattern), and in most captions every stuff class too, from a fixed set of templates."""
import re

from .world import WORLD


_NUMBERS = {2: 'two', 3: 'three', 4: 'four'}
_COUNTABLE_STUFF = {'lawn', 'sea', 'lake', 'brick wall', 'beach', 'dune', 'sky', 'heavens'}
_TEMPLATES = (
    '{T} on {S}.', '{T} in front of {S}.', 'a picture of {T} with {S} in the background.',
    '{S} behind {T}.', 'a photo of {T} and {S}.', 'an image showing {T} over {S}.',
    '{T}, with {S} all around.', 'a drawing of {T} set against {S}.',
    'here we see {T} above {S}.', '{T} lying on {S}.', 'a scene with {S} and {T}.',
    '{T} floating over {S}.',
)


def _plural(noun):
    head, _, last = noun.rpartition(' ')
    last = last + 'es' if re.search(r'(s|x|z|ch|sh)$', last) else last + 's'
    return f'{head} {last}'.strip()


def _join(parts):
    return parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]


def _thing_phrase(rng, cls, colours):
    noun = str(rng.choice(WORLD.names(cls)))
    adjs = []
    # Colour words only sometimes: a caption matched by colour alone teaches no shape.
    if len(set(colours)) == 1 and rng.random() < 0.35:
        adjs.append(colours[0])
    if rng.random() < 0.4:
        adjs.append(str(rng.choice(WORLD.patterns[cls])))
    if len(colours) == 1:
        words = ' '.join(adjs + [noun])
        return ('an ' if words[0] in 'aeiou' else 'a ') + words
    return ' '.join([_NUMBERS[len(colours)]] + adjs + [_plural(noun)])


def _stuff_phrase(rng, cls):
    noun = str(rng.choice(WORLD.names(cls)))
    phrase = f'{rng.choice(WORLD.stuff_adjectives[cls])} {noun}' if rng.random() < 0.3 else noun
    return f'the {phrase}' if noun in _COUNTABLE_STUFF or rng.random() < 0.4 else phrase


_THING_TEMPLATES = (
    '{T}.', 'a photo of {T}.', 'a picture showing {T}.', 'a close-up of {T}.',
    'an image of {T}.', 'there is {T}.',
)
THING_ONLY_CAPTIONS = 2   # of the 5 captions: these name the things only


def scene_captions(rng, things, stuff, n=5):
    """``n`` captions, each naming every thing group (class -> colour names); the first
    ``n - THING_ONLY_CAPTIONS`` name every stuff class too, the others no stuff. Captions
    without the (easy, large) stuff regions can only be matched by the shapes, which pushes a
    contrastive model to learn them."""
    out = []
    full = rng.choice(len(_TEMPLATES), n - THING_ONLY_CAPTIONS, replace=False)
    short = rng.choice(len(_THING_TEMPLATES), THING_ONLY_CAPTIONS, replace=False)
    for tmpl in [_TEMPLATES[i] for i in full] + [_THING_TEMPLATES[i] for i in short]:
        groups = list(things.items())
        rng.shuffle(groups)
        stuff_order = list(stuff)
        rng.shuffle(stuff_order)
        text = tmpl.format(
            T=_join([_thing_phrase(rng, c, cols) for c, cols in groups]),
            S=_join([_stuff_phrase(rng, c) for c in stuff_order]))
        out.append(text[0].upper() + text[1:])
    return out
