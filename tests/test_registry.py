import pytest

from ovseg_bench.registry import BACKBONES, METHODS, build, describe, load_plugin_file, names


def test_builtins_registered_with_descriptions():
    assert 'MaskCLIP' in names(METHODS)
    assert {'OpenCLIPBackbone', 'HFCLIPBackbone'} <= set(names(BACKBONES))
    assert all(describe(METHODS).values()), 'every method needs a one-line docstring'


def test_unknown_name_fails_with_valid_choices():
    with pytest.raises(KeyError) as err:
        build(METHODS, dict(type='MaskClip'))
    msg = str(err.value)
    assert 'Did you mean MaskCLIP' in msg and 'Valid:' in msg
    with pytest.raises(KeyError, match='OpenCLIPBackbone'):
        build(BACKBONES, dict(type='OpenClipBackbone', model='ovseg-tiny'))


def test_plugin_file_registers_a_method(tmp_path):
    plugin = tmp_path / 'my_plugin.py'
    plugin.write_text(
        'from ovseg_bench.head import MethodHead\n'
        'from ovseg_bench.registry import METHODS\n'
        '@METHODS.register_module(force=True)\n'
        'class MyPluginHead(MethodHead):\n'
        '    """A plugin from outside methods/."""\n'
        '    trainable = False\n'
        '    def predict_dense(self, images, class_embeds):\n'
        '        return images[:, :1]\n')
    load_plugin_file(plugin)
    assert 'MyPluginHead' in names(METHODS)
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_plugin_file(tmp_path / 'nope.py')


def test_cli_freezes_the_imported_objects_out_of_collections():
    """The CLI's process takes what it imported out of the collector's scans (mmengine
    collects at every dataset build), so a collection only walks what came after."""
    import gc

    from ovseg_bench.cli import main
    gc.unfreeze()
    try:
        assert main(['list']) == 0
        assert gc.get_freeze_count() > 100_000      # torch, mmengine, open_clip, ...
        assert len(gc.get_objects()) < gc.get_freeze_count() / 10
    finally:
        gc.unfreeze()
