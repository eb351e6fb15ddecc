# The embedded default benchmark (`make bench`): every registered method on the project's tiny
# CLIP and the four synthetic datasets. Training-free methods are evaluated; trainable ones are
# trained (runs are reused) and then evaluated. No real data or weights needed.
synthetic = 'data/synth'                       # written once if absent
pretrain = ['configs/clip/clip_tiny_synth.py']  # the tiny CLIP, trained once if absent
methods = 'all'                                 # every registered method, plugins included,
                                                # each on its default config (MethodInfo.config)
# A plugin with no config of its own gets these configs merged in order (backbone, protocol,
# and the shared training recipe on the synthetic captions), with its own method type.
plugin_base = ['configs/maskclip/maskclip_tiny_synth.py', 'configs/_base_/train/tiny_synth.py']
backbones = None                                # None: each method config's own backbone
datasets = ['synth_voc', 'synth_context', 'synth_coco', 'synth_ade']
seeds = [0]
train_workers = 2                               # trainings side by side (2 cores: ~1.3x)
save_predictions = 4                            # per cell, for the qualitative grids
out_dir = 'work_dirs/bench'
