"""Code generation: a model's statements (from Brian2's state updaters, through sympy) printed as torch
functions (``torch_source``) and as C kernels for one population (``c_neuron``: forward and adjoint)
and for whole networks (``c_network``), and the one loader that compiles and caches C (``build``)."""
