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


def test_method_info_records_each_builtin():
    from ovseg_bench.registry import MethodInfo, method_info
    info = method_info('CLIPZSS')
    assert isinstance(info, MethodInfo)
    assert (info.display_name, info.setting, info.trainable) == ('CLIP-ZSS', 'zero_shot', True)
    assert info.config.endswith('configs/clip_zss/clip_zss_tiny_synth.py')
    assert info.source.endswith('clip_zss/head.py')
    assert method_info('ViLSeg').display_name == 'ViL-Seg'
    assert method_info('SegCLIP').train_views == ('superpixels',)
    assert method_info('MaskCLIP').trainable is False
    # the head's class attributes are the record's (read where only an instance is at hand)
    assert METHODS.get('SegCLIP').train_views == ('superpixels',)
    import hashlib
    from pathlib import Path
    assert info.source_sha == hashlib.sha256(Path(info.source).read_bytes()).hexdigest()
    with pytest.raises(KeyError, match='Did you mean ViLSeg'):
        method_info('VilSeg')


@pytest.fixture
def scratch_methods():
    """Names registered by a test, removed from METHODS and the records afterwards."""
    from ovseg_bench import registry
    added = []
    yield added
    for name in added:
        METHODS.module_dict.pop(name, None)
        registry._INFO.pop(name, None)


def test_register_method_resolves_the_default_config_next_to_the_file(tmp_path, scratch_methods):
    (tmp_path / 'scratch_cfg.py').write_text("method = dict(type='ScratchHead')\n")
    plugin = tmp_path / 'scratch.py'
    plugin.write_text(
        'from ovseg_bench.head import MethodHead\n'
        'from ovseg_bench.registry import register_method\n'
        "@register_method(display_name='Scratch-1', trainable=False, config='scratch_cfg.py')\n"
        'class ScratchHead(MethodHead):\n'
        '    """A scratch head."""\n'
        '    def predict_dense(self, images, class_embeds):\n'
        '        return images[:, :1]\n')
    scratch_methods.append('ScratchHead')
    load_plugin_file(plugin)
    from ovseg_bench.registry import method_info
    info = method_info('ScratchHead')
    assert info.config == str((tmp_path / 'scratch_cfg.py').resolve())
    assert info.source == str(plugin.resolve()) and info.display_name == 'Scratch-1'
    assert METHODS.get('ScratchHead').trainable is False


def test_register_method_rejects_a_bad_setting_or_a_missing_config(scratch_methods):
    from ovseg_bench.head import MethodHead
    from ovseg_bench.registry import register_method
    with pytest.raises(ValueError, match="setting must be one of"):
        register_method(setting='closed_set')
    scratch_methods.append('NoConfigHead')
    with pytest.raises(FileNotFoundError, match='default config missing_cfg.py'):
        @register_method(config='missing_cfg.py')
        class NoConfigHead(MethodHead):
            def predict_dense(self, images, class_embeds):
                return images


def test_a_plainly_registered_plugin_gets_a_record_from_its_class(scratch_methods):
    from ovseg_bench.head import MethodHead
    from ovseg_bench.registry import method_info

    class PlainHead(MethodHead):
        """A plugin registered the mmengine way."""
        setting = 'zero_shot'

        def predict_dense(self, images, class_embeds):
            return images
    scratch_methods.append('PlainHead')
    METHODS.register_module(module=PlainHead)
    info = method_info('PlainHead')
    assert (info.display_name, info.setting, info.trainable, info.config) == \
        ('PlainHead', 'zero_shot', True, None)
