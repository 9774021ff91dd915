"""Backprop alternatives for binary neural networks (Crulis, Serres, de Runz, Venturini).

Re-implements two studies: BP vs DFA vs DRTP on binary MLPs (ACM SAC 2023, "study A") and its
extension to MLP-Mixer, MobileNetV2 and VGG-19 on ImageNette with the HSIC bottleneck and
SigpropTL added (arXiv 2408.04460, "study B"). Layout as in the reference code:
``commons`` (sign activations with straight-through estimators, binary layers, study-A batch
norm), ``utils.binary`` (binarisation of any model), ``models`` (the studies' networks),
``training`` (one module per rule) and ``train`` (the command line).
"""

__version__ = "0.1.0"
