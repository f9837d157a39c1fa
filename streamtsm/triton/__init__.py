"""NVIDIA Triton Inference Server for exported models (torch-free): repositories, a CPU server, a client.

``repository`` writes a model repository (``config.pbtxt`` with the sequence batcher, the model
file, labels); ``templates/model.py`` is the python-backend model copied into it for CPU
servers; ``server`` sets up and starts a local ``tritonserver``. The client engine is
:mod:`streamtsm.backends.triton_client`.
"""
