# ClearCLIP (Lan et al., ECCV 2024): last block reduced to q-q attention, no residual, no FFN.
method = dict(type='ClearCLIP', residual=False)
