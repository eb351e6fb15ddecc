"""The protocol dataclass is the one home of the fields: the docs' table, the result columns
and the value checks follow it."""
import dataclasses
import re
from pathlib import Path

import pytest

from ovseg_bench.bench import results
from ovseg_bench.protocol import Protocol, resolve_protocol, result_columns

DOC = Path(__file__).parents[1] / 'docs' / 'protocol.md'


def doc_table():
    """``[(field names, default cell, compared cell)]`` of docs/protocol.md's field table."""
    rows, in_table = [], False
    for line in DOC.read_text().splitlines():
        if line.startswith('| field |'):
            in_table = True
        elif in_table and not line.startswith('|'):
            break
        elif in_table and not line.startswith('|---'):
            cells = [c.strip() for c in line.strip('|').split(' | ')]
            rows.append((re.findall(r'`(\w+)`', cells[0]), cells[-2], cells[-1]))
    return rows


def shown(value):
    return f'`{value}`' if isinstance(value, str) else repr(value)


def test_the_docs_table_lists_every_field_with_its_default_and_comparability():
    fields = {f.name: f for f in dataclasses.fields(Protocol)}
    defaults = dataclasses.asdict(Protocol())
    documented = []
    for names, default, compared in doc_table():
        documented += names
        assert default == ', '.join(shown(defaults[n]) for n in names), names
        flags = {fields[n].metadata['comparable'] for n in names}
        assert flags == {compared == 'yes'}, names
    assert documented == list(fields)


def test_result_rows_record_every_comparable_field_and_nothing_speed_only():
    columns = result_columns()
    assert results.PROTOCOL_FIELDS == columns
    for f in dataclasses.fields(Protocol):
        if f.name not in ('name', 'vocabularies'):    # recorded as protocol / vocabulary
            assert (f.name in columns) == f.metadata['comparable'], f.name


@pytest.mark.parametrize('field, value', [('synonym_merge', 'mean'), ('window_pad', 'left'),
                                          ('mode', 'tiles'), ('postprocess', 'crf'),
                                          ('bg_rule', 'sigmoid'), ('precision', 'fp16')])
def test_a_value_outside_a_fields_legal_ones_names_them(field, value):
    with pytest.raises(ValueError, match=rf'protocol.{field} must be one of .*got {value!r}'):
        resolve_protocol({field: value}, 'voc21')


def test_a_misspelt_field_suggests_the_nearest():
    with pytest.raises(KeyError, match=r'window_pads.*Did you mean window_pad\?'):
        Protocol.from_dict(dict(window_pads='end'))
