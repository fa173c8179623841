"""The parts of ``scripts/train_corrective.py``, which trains the learned manifold corrective b̂_ψ of LMC-SDS.

``config`` holds the run's settings, ``data`` the training triplets (z, ẑ_t, t), ``report`` the evaluation,
the model card and the loss plot written beside the weights. The training loop is the script itself.
"""
